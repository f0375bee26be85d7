package localcluster

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The real node's network. Everything stays on this machine: the node address is on lo,
// Pods sit on a bridge of the cluster's own, the Service range is routed to that bridge so
// that a ClusterIP never leaves through the default route, and a forward rule drops Pod
// traffic to anywhere but the cluster's own addresses.
const (
	NodeName = "liveroom-node"
	// NodeIP is the node's address (on lo): the kubelet and the API server listen there,
	// and Pods reach the API server there through the kubernetes Service.
	NodeIP = "10.77.0.1"
	// ServiceCIDR holds ClusterIPs; the kubernetes Service is its first address.
	ServiceCIDR    = "10.77.96.0/24"
	kubernetesIP   = "10.77.96.1"
	clusterDNSIP   = "10.77.96.10"
	PodCIDR        = "10.77.64.0/24"
	podGateway     = "10.77.64.1"
	clusterRange   = "10.77.0.0/16"
	bridgeName     = "lrcni0"
	guardTableName = "liveroom-localcluster"
)

// watchedSysctls are the kernel settings the node's components change (the kubelet sets
// kernel and vm ones, the bridge plugin forwarding, kube-proxy conntrack and
// route_localnet): they are restored when the cluster stops.
var watchedSysctls = []string{
	"kernel.panic", "kernel.panic_on_oops", "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes",
	"vm.overcommit_memory", "vm.panic_on_oom",
	"net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv4.conf.default.forwarding",
	"net.ipv4.conf.lo.forwarding", "net.ipv4.conf.all.route_localnet",
	"net.ipv6.conf.all.forwarding", "net.ipv6.conf.default.forwarding",
	"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
	"net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_tcp_timeout_close_wait", "net.netfilter.nf_conntrack_udp_timeout",
	"net.netfilter.nf_conntrack_udp_timeout_stream",
}

// hostPaths are created whatever the components' configuration says: by the kubelet
// (device plugins, container log links), containerd (shim sockets), CNI (its result cache),
// the mount(8) the kubelet runs (utab) and kube-controller-manager (flex volumes).
var hostPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd",
	"/var/lib/cni", "/run/mount", "/usr/libexec/kubernetes"}

// NodeOptions say how to run a cluster with one real node.
type NodeOptions struct {
	// BinDir holds the control plane (etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubectl), the node (kubelet, kube-proxy, containerd,
	// containerd-shim-runc-v2, ctr) and the CNI plugins in BinDir/cni, as hack/envtest.sh
	// builds them. runc comes from the system (Debian package runc).
	BinDir string
	// Dir receives every file of the cluster; Dir/logs its components' logs.
	Dir string
	// PauseImage is an OCI archive of the Pod sandbox image, named by its
	// io.containerd.image.name annotation (as hack/image writes it).
	PauseImage string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
}

// nodeState is what a real-node cluster holds beyond the control plane.
type nodeState struct {
	host   *hostChanges
	pki    *pki
	socket string
	procAt map[string]int
	// hostAtStart is HostState once an interrupted run's changes were undone.
	hostAtStart []string
}

// HostStateAtStart is the host's state when the real node started, for comparison with
// HostState after Stop.
func (c *Cluster) HostStateAtStart() []string {
	if c.node == nil {
		return nil
	}
	return c.node.hostAtStart
}

// StartNode starts a cluster with one real node: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, containerd with runc and CNI, a kubelet and
// kube-proxy (nftables mode), all as root. Every change it makes to the host outside Dir
// is recorded first in a journal under JournalDir and undone by Stop, or by the next
// StartNode if this process is killed. Stop must be called however it ends.
func StartNode(ctx context.Context, o NodeOptions) (*Cluster, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := checkNodeTools(o.BinDir); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(o.BinDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	host, err := openHostChanges(JournalDir, logf)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Options: Options{BinDir: bin, Dir: dir},
		node: &nodeState{host: host, socket: filepath.Join(dir, "containerd", "containerd.sock"), procAt: map[string]int{},
			hostAtStart: HostState()},
	}
	c.logf = logf
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"host", c.prepareHost},
		{"control plane", c.startControlPlane},
		{"containerd", func(ctx context.Context) error { return c.startContainerd(ctx, o.PauseImage) }},
		{"kubelet", c.startKubelet},
		{"kube-proxy", c.startKubeProxy},
		{"node Ready", c.waitNodeReady},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(ctx); err != nil {
			return c, fmt.Errorf("%s: %w (logs in %s)", s.name, err, filepath.Join(dir, "logs"))
		}
		logf("Started %s in %s", s.name, time.Since(start).Round(time.Millisecond))
	}
	return c, nil
}

func checkNodeTools(binDir string) error {
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
		"kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr",
		"cni/bridge", "cni/host-local", "cni/loopback", "cni/portmap"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not built in %s: %s (run `make node-bins`)", binDir, strings.Join(missing, ", "))
	}
	for _, tool := range []string{"runc", "nft", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (Debian packages runc, nftables, iproute2): %w", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root")
	}
	return nil
}

// prepareHost records, then makes, the changes to the host that precede the components:
// the node address, the Pods' bridge, the route and guard of their traffic.
func (c *Cluster) prepareHost(context.Context) error {
	h := c.node.host
	for _, key := range watchedSysctls {
		if v, ok := readSysctl(key); ok {
			if err := h.record(change{Kind: "sysctl", Name: key, Value: v}); err != nil {
				return err
			}
		}
	}
	tables, err := listNftables()
	if err != nil {
		return err
	}
	saved, err := json.Marshal(tables)
	if err != nil {
		return err
	}
	if err := h.record(change{Kind: "nftables", Name: "ruleset", Value: string(saved)}); err != nil {
		return err
	}
	if !hasAddress("lo", NodeIP+"/32") {
		if err := h.record(change{Kind: "address", Name: "lo", Value: NodeIP + "/32"}); err != nil {
			return err
		}
		if err := run("ip", "addr", "add", NodeIP+"/32", "dev", "lo"); err != nil {
			return err
		}
	}
	if err := h.record(change{Kind: "link", Name: bridgeName}); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", podGateway + "/24", "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
		{"route", "add", ServiceCIDR, "dev", bridgeName, "src", podGateway},
	} {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	guard := fmt.Sprintf("table ip %s {\n chain forward {\n  type filter hook forward priority -10; policy accept;\n  ip saddr %s ip daddr != %s drop\n }\n}\n",
		guardTableName, PodCIDR, clusterRange)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(guard)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, out)
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if err := h.record(change{Kind: "path", Name: p}); err != nil {
				return err
			}
		}
	}
	if !cgroupExists("kubepods") {
		if err := h.record(change{Kind: "cgroup", Name: "kubepods"}); err != nil {
			return err
		}
	}
	if err := h.record(change{Kind: "tree", Name: c.Dir}); err != nil {
		return err
	}
	return h.record(change{Kind: "shims", Name: filepath.Join(c.BinDir, "containerd-shim-runc-v2")})
}

// apiServerURL is where every client reaches the API server, Pods included (through the
// kubernetes Service).
func (c *Cluster) apiServerURL(port string) string { return "https://" + NodeIP + ":" + port }

func (c *Cluster) startControlPlane(ctx context.Context) error {
	p, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return err
	}
	c.node.pki = p
	ports, err := FreePorts(3)
	if err != nil {
		return err
	}
	etcdURL, peerURL, apiPort := "http://127.0.0.1:"+ports[0], "http://127.0.0.1:"+ports[1], ports[2]
	server := c.apiServerURL(apiPort)
	if _, _, err := p.issue("apiserver", identity{user: "kube-apiserver"},
		NodeIP, kubernetesIP, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"); err != nil {
		return err
	}
	if _, _, err := p.issue("apiserver-kubelet-client", identity{user: "kube-apiserver-kubelet-client", groups: []string{"system:masters"}}); err != nil {
		return err
	}
	if err := p.serviceAccountKeys(); err != nil {
		return err
	}
	if err := c.startNodeProcess("etcd", nil, "--name=default", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync=true", "--log-level=warn"); err != nil {
		return err
	}
	if err := c.startNodeProcess("kube-apiserver", nil,
		"--etcd-servers="+etcdURL, "--bind-address="+NodeIP, "--advertise-address="+NodeIP, "--secure-port="+apiPort,
		"--service-cluster-ip-range="+ServiceCIDR,
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+p.path("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--cert-dir="+filepath.Join(c.Dir, "pki", "apiserver-generated"),
		"--profiling=false", "--v=1"); err != nil {
		return err
	}

	admin := identity{user: "local-admin", groups: []string{"system:masters"}}
	if c.Kubeconfig, err = p.kubeconfig("admin", server, admin); err != nil {
		return err
	}
	adminCert, _ := os.ReadFile(p.path("admin.crt"))
	adminKey, _ := os.ReadFile(p.path("admin.key"))
	c.Config = &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM, CertData: adminCert, KeyData: adminKey}}
	if err := c.waitAPIServer(ctx); err != nil {
		return err
	}

	kcm, err := p.kubeconfig("kube-controller-manager", server, identity{user: "system:kube-controller-manager"})
	if err != nil {
		return err
	}
	if err := c.startNodeProcess("kube-controller-manager", nil,
		"--kubeconfig="+kcm, "--authentication-kubeconfig="+kcm, "--authorization-kubeconfig="+kcm,
		"--leader-elect=false", "--secure-port=0", "--controllers=*",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p.path("sa.key"), "--root-ca-file="+p.path("ca.crt"),
		"--cluster-signing-cert-file="+p.path("ca.crt"), "--cluster-signing-key-file="+p.path("ca.key"),
		"--flex-volume-plugin-dir="+filepath.Join(c.Dir, "volume-plugins"), "--v=1"); err != nil {
		return err
	}
	sched, err := p.kubeconfig("kube-scheduler", server, identity{user: "system:kube-scheduler"})
	if err != nil {
		return err
	}
	return c.startNodeProcess("kube-scheduler", nil,
		"--kubeconfig="+sched, "--authentication-kubeconfig="+sched, "--authorization-kubeconfig="+sched,
		"--leader-elect=false", "--secure-port=0", "--v=1")
}

func (c *Cluster) waitAPIServer(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	return poll(ctx, 60*time.Second, "the API server ready", func() (bool, error) {
		var status int
		cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		return status == http.StatusOK, nil
	})
}

func (c *Cluster) startContainerd(ctx context.Context, pauseImage string) error {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return err
	}
	d := filepath.Join(c.Dir, "containerd")
	cniConf := filepath.Join(c.Dir, "cni", "net.d")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	conflist := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "liveroom-localcluster",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": bridgeName, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": PodCIDR, "gateway": podGateway}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(c.Dir, "cni", "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "backend": "nftables"},
		},
	}
	data, err := json.MarshalIndent(conflist, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cniConf, "10-liveroom.conflist"), data, 0o644); err != nil {
		return err
	}
	sandboxImage, err := ArchiveImageName(pauseImage)
	if err != nil {
		return fmt.Errorf("the Pod sandbox image: %w", err)
	}
	// Images come from imported archives only: every registry, Docker Hub's included,
	// resolves to a closed port on this machine, so a missing image fails at once instead
	// of being pulled from the network.
	registryHosts := filepath.Join(d, "registry-hosts")
	for _, registry := range []string{"_default", "docker.io"} {
		if err := os.MkdirAll(filepath.Join(registryHosts, registry), 0o755); err != nil {
			return err
		}
		hosts := "server = \"http://127.0.0.1:9\"\n\n[host.\"http://127.0.0.1:9\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
		if err := os.WriteFile(filepath.Join(registryHosts, registry, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return err
		}
	}
	config := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = %[5]q
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = %[6]q
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = %[11]q
  [plugins.'io.containerd.cri.v1.runtime']
    # Root here cannot lower oom_score_adj (no CAP_SYS_RESOURCE): without this every
    # sandbox fails in runc.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [%[7]q]
      conf_dir = %[8]q
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = %[9]q
          Root = %[10]q
          SystemdCgroup = false
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
`, filepath.Join(d, "root"), filepath.Join(d, "state"), c.node.socket, c.node.socket+".ttrpc",
		filepath.Join(d, "opt"), sandboxImage, filepath.Join(c.BinDir, "cni"), cniConf, runc, filepath.Join(d, "runc"),
		registryHosts)
	configPath := filepath.Join(d, "config.toml")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	// containerd finds its shim on PATH.
	env := []string{"PATH=" + c.BinDir + ":" + os.Getenv("PATH")}
	if err := c.startNodeProcess("containerd", env, "--config="+configPath, "--log-level=warn"); err != nil {
		return err
	}
	if err := poll(ctx, 30*time.Second, "containerd serving", func() (bool, error) {
		return exec.CommandContext(ctx, c.ctrPath(), "--address", c.node.socket, "version").Run() == nil, nil
	}); err != nil {
		return err
	}
	return c.ImportImage(ctx, pauseImage)
}

// ArchiveImageName reads the name of the image in an OCI archive from its index.json, as
// containerd names it on import (docker.io/library/NAME:TAG for a short name).
func ArchiveImageName(archive string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return "", fmt.Errorf("%s: no index.json: %w", archive, err)
		}
		if hdr.Name != "index.json" {
			continue
		}
		var index struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&index); err != nil {
			return "", fmt.Errorf("%s: %w", archive, err)
		}
		for _, m := range index.Manifests {
			if name := m.Annotations["io.containerd.image.name"]; name != "" {
				return name, nil
			}
		}
		return "", fmt.Errorf("%s names no image (annotation io.containerd.image.name)", archive)
	}
}

func (c *Cluster) ctrPath() string { return filepath.Join(c.BinDir, "ctr") }

// ImportImage imports an OCI archive (`make image` output) into the node's containerd, for
// Pods with imagePullPolicy Never or IfNotPresent. The image keeps the name the archive
// gives it.
func (c *Cluster) ImportImage(ctx context.Context, archive string) error {
	if _, err := c.Ctr(ctx, "images", "import", "--local", archive); err != nil {
		return fmt.Errorf("importing %s: %w", archive, err)
	}
	return nil
}

// Ctr runs ctr against the node's containerd, in the Kubernetes namespace.
func (c *Cluster) Ctr(ctx context.Context, args ...string) (string, error) {
	if c.node == nil {
		return "", errors.New("no real node")
	}
	out, err := exec.CommandContext(ctx, c.ctrPath(), append([]string{"--address", c.node.socket, "-n", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *Cluster) startKubelet(context.Context) error {
	p := c.node.pki
	ports, err := FreePorts(2)
	if err != nil {
		return err
	}
	if _, _, err := p.issue("kubelet", identity{user: "system:node:" + NodeName}, NodeIP, NodeName); err != nil {
		return err
	}
	kubeconfig, err := p.kubeconfig("kubelet-client", c.Config.Host, identity{user: "system:node:" + NodeName, groups: []string{"system:nodes"}})
	if err != nil {
		return err
	}
	d := filepath.Join(c.Dir, "kubelet")
	resolv := filepath.Join(c.Dir, "resolv.conf")
	// Pods resolve nothing: their DNS server is an unused ClusterIP, so no query leaves.
	if err := os.WriteFile(resolv, []byte("nameserver "+clusterDNSIP+"\n"), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]q}
authorization: {mode: Webhook}
tlsCertFile: %[5]q
tlsPrivateKeyFile: %[6]q
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[7]s
clusterDomain: cluster.local
clusterDNS: [%[8]s]
resolvConf: %[9]q
podLogsDir: %[10]q
volumePluginDir: %[11]q
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, nodefs.inodesFree: 1%%, imagefs.available: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, NodeIP, ports[0], ports[1], p.path("ca.crt"), p.path("kubelet.crt"), p.path("kubelet.key"),
		c.node.socket, clusterDNSIP, resolv, filepath.Join(c.Dir, "pod-logs"), filepath.Join(c.Dir, "volume-plugins"))
	configPath := filepath.Join(c.Dir, "kubelet-config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	return c.startNodeProcess("kubelet", nil, "--config="+configPath, "--kubeconfig="+kubeconfig,
		"--root-dir="+d, "--cert-dir="+filepath.Join(d, "pki"), "--hostname-override="+NodeName,
		"--node-ip="+NodeIP, "--v=1")
}

func (c *Cluster) startKubeProxy(context.Context) error {
	p := c.node.pki
	ports, err := FreePorts(2)
	if err != nil {
		return err
	}
	kubeconfig, err := p.kubeconfig("kube-proxy", c.Config.Host, identity{user: "system:kube-proxy"})
	if err != nil {
		return err
	}
	// conntrack zeros leave the kernel's conntrack settings alone.
	config := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %[1]q}
mode: nftables
hostnameOverride: %[2]s
clusterCIDR: %[3]s
nodePortAddresses: [%[4]s/32]
healthzBindAddress: 127.0.0.1:%[5]s
metricsBindAddress: 127.0.0.1:%[6]s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`, kubeconfig, NodeName, PodCIDR, NodeIP, ports[0], ports[1])
	configPath := filepath.Join(c.Dir, "kube-proxy-config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return err
	}
	return c.startNodeProcess("kube-proxy", nil, "--config="+configPath, "--v=1")
}

func (c *Cluster) waitNodeReady(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	return poll(ctx, 90*time.Second, "node "+NodeName+" Ready", func() (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
}

// startNodeProcess starts a component and records it, so that a later run kills it if
// this one is killed before it could.
func (c *Cluster) startNodeProcess(name string, env []string, args ...string) error {
	if err := c.runEnv(name, env, args...); err != nil {
		return err
	}
	cmd := c.procs[len(c.procs)-1]
	c.node.procAt[name] = len(c.procs) - 1
	started, ok := startTime(cmd.Process.Pid)
	if !ok {
		return fmt.Errorf("%s exited at once: see %s", name, filepath.Join(c.Dir, "logs", name+".log"))
	}
	return c.node.host.record(change{Kind: "process", Name: strconv.Itoa(cmd.Process.Pid), Value: started})
}

// stopNode stops the node's components, its Pods and then the control plane, and undoes
// every change to the host.
func (c *Cluster) stopNode() error {
	stopNamed := func(name string) {
		if i, ok := c.node.procAt[name]; ok && c.procs[i] != nil {
			stop(c.procs[i])
			c.procs[i] = nil
		}
	}
	stopNamed("kube-proxy")
	stopNamed("kubelet")
	// The Pods' processes and their shims, before containerd goes.
	killCgroup("kubepods")
	killByExecutable(filepath.Join(c.BinDir, "containerd-shim-runc-v2"))
	for _, name := range []string{"containerd", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		stopNamed(name)
	}
	c.procs = nil
	return c.node.host.release(c.logf)
}

// poll calls cond every 100 ms until it is true, it fails, or the timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
