// Package localcluster assembles a small but real Kubernetes cluster on this machine from
// components built by hack/envtest.sh: etcd and kube-apiserver (through envtest),
// kube-controller-manager (garbage collector, Job controller, ...), kube-scheduler and kwok,
// which simulates nodes so that pods are scheduled and "run". The local demo and the
// end-to-end tests use it. StartNode runs a cluster with one real node instead (kubelet,
// containerd, runc, CNI, kube-proxy), on which Pods really run.
package localcluster

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// Options say what to run.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
	BinDir string
	// CRDDir is installed when the API server is up; "" installs none.
	CRDDir string
	// Dir receives kubeconfigs and component logs.
	Dir string
	// Nodes is the number of kwok nodes; 0 runs neither kwok nor the scheduler.
	Nodes int
	// Controllers runs kube-controller-manager (garbage collection, Jobs, namespaces).
	Controllers bool
}

// Cluster is a running local cluster.
type Cluster struct {
	Options
	// Config is a cluster-admin client configuration.
	Config *rest.Config
	// Kubeconfig is the path of a cluster-admin kubeconfig.
	Kubeconfig string

	env   *envtest.Environment
	procs []*exec.Cmd
	// node is set for a real-node cluster (StartNode).
	node *nodeState
	logf func(format string, args ...any)
}

// Start starts the cluster; Stop must be called however it ends.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{Options: o}
	c.env = &envtest.Environment{
		BinaryAssetsDirectory: o.BinDir,
		ErrorIfCRDPathMissing: o.CRDDir != "",
	}
	if o.CRDDir != "" {
		c.env.CRDDirectoryPaths = []string{o.CRDDir}
	}
	cfg, err := c.env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	c.Config = cfg
	admin, err := c.env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return c, err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return c, err
	}
	c.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return c, err
	}

	if o.Controllers {
		if err := c.run("kube-controller-manager",
			"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--use-service-account-credentials=false",
			"--controllers="+strings.Join([]string{
				"garbage-collector-controller", "job-controller", "namespace-controller", "node-lifecycle-controller",
				"replicaset-controller", "deployment-controller", "disruption-controller", "ttl-after-finished-controller",
				"pod-garbage-collector-controller",
			}, ","),
			"--concurrent-gc-syncs=5", "--v=1"); err != nil {
			return c, err
		}
	}
	if o.Nodes > 0 {
		if err := c.run("kube-scheduler", "--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--v=1"); err != nil {
			return c, err
		}
		stages := filepath.Join(o.Dir, "kwok-stages.yaml")
		if err := os.WriteFile(stages, kwokStages, 0o644); err != nil {
			return c, err
		}
		if err := c.run("kwok", "--kubeconfig="+c.Kubeconfig, "--config="+stages,
			"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--cidr=10.244.0.0/16", "--node-ip=10.244.0.1", "--node-lease-duration-seconds=40",
			"--server-address=127.0.0.1:0"); err != nil {
			return c, err
		}
		if err := c.addNodes(ctx, o.Nodes); err != nil {
			return c, err
		}
	}
	return c, nil
}

// run starts one component with its output in Dir/logs/<name>.log. The process dies with
// its parent, so an interrupted run leaves nothing behind.
func (c *Cluster) run(name string, args ...string) error {
	return c.runEnv(name, nil, args...)
}

// runEnv is run with extra environment variables.
func (c *Cluster) runEnv(name string, env []string, args ...string) error {
	bin := filepath.Join(c.BinDir, name)
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s is not built: run `make cluster-bins` (%w)", name, err)
	}
	logFile, err := os.Create(filepath.Join(c.Dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	return nil
}

// addNodes registers kwok nodes with room for many pods.
func (c *Cluster) addNodes(ctx context.Context, n int) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"type": "kwok", "topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%2),
				},
			},
			Status: corev1.NodeStatus{Allocatable: kwokNodeSize, Capacity: kwokNodeSize},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("adding node %s: %w", name, err)
		}
	}
	return nil
}

// kwokNodeSize is what each kwok node offers: room for every test's Pods.
var kwokNodeSize = corev1.ResourceList{
	corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110"),
}

// Stop stops every component; it is safe to call on a partly started cluster.
func (c *Cluster) Stop() error {
	if c.node != nil {
		return c.stopNode()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		stop(c.procs[i])
	}
	c.procs = nil
	if c.env != nil {
		return c.env.Stop()
	}
	return nil
}

// stop asks a process group to end and kills it if it does not within a few seconds. The
// exit status is not an error: a component stopped by a signal exits non-zero.
func stop(cmd *exec.Cmd) {
	pgid := -cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-exited
	}
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as a ServiceAccount
// with a token from the TokenRequest API, as a pod of that ServiceAccount would.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name, path string) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	expiry := int64(24 * 3600)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}
	tok, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting a token for %s/%s: %w", namespace, name, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: namespace}
	kc.CurrentContext = "default"
	return clientcmd.WriteToFile(*kc, path)
}

// KubectlFlags point kubectl at the cluster, with its discovery cache in Dir rather than
// in $HOME.
func (c *Cluster) KubectlFlags() []string {
	return []string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}
}

// Kubectl runs the kubectl built beside the control plane against the cluster.
func (c *Cluster) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), append(c.KubectlFlags(), args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
