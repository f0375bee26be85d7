package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/liveroom-io/liveroom-operator/internal/localcluster"
)

// startOnHost starts a cluster with kwok nodes, installs config/default without its
// Deployments and runs bin/manager in both roles on this host.
func (d *demo) startOnHost(ctx context.Context) error {
	if err := d.do("Starting a local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, 2 kwok nodes",
		"run `make cluster-bins` to build the components; see "+filepath.Join(d.work, "logs"), func() error {
			var err error
			d.cluster, err = localcluster.Start(ctx, localcluster.Options{BinDir: d.binDir, Dir: d.work, Nodes: 2, Controllers: true})
			if err != nil {
				return err
			}
			return d.waitNodesReady(ctx)
		}); err != nil {
		return err
	}
	if err := d.do("Installing config/default with kustomize, as a user would (the operator and the example app), without the Deployments",
		"check `kubectl kustomize config/default` renders", func() error { return d.install(ctx) }); err != nil {
		return err
	}
	return d.do("Running bin/manager as in production: --role=callback as ServiceAccount liveroom-callback-server, "+
		"--role=controller as liveroom-controller-manager (leader election)",
		"run `make build`; the logs are "+filepath.Join(d.work, "logs", "callback.log")+" and controller.log",
		func() error { return d.startManagers(ctx) })
}

func (d *demo) waitNodesReady(ctx context.Context) error {
	return d.waitFor(ctx, "kwok nodes Ready", func() (bool, error) {
		out, err := d.get(ctx, "get", "nodes", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`)
		return strings.Count(out, "True") == 2, err
	})
}

// install applies everything config/default renders except the Deployments and the
// PodDisruptionBudget: the demo runs the manager binary itself. It adds a ServiceAccount
// allowed to read metrics, as one would bind Prometheus'.
func (d *demo) install(ctx context.Context) error {
	rendered, err := d.get(ctx, "kustomize", filepath.Join(d.root, "config/default"))
	if err != nil {
		return err
	}
	var keep []string
	for _, doc := range strings.Split(rendered, "\n---\n") {
		if strings.Contains(doc, "\nkind: Deployment\n") || strings.Contains(doc, "\nkind: PodDisruptionBudget\n") {
			continue
		}
		keep = append(keep, doc)
	}
	if _, err := d.apply(ctx, keep); err != nil {
		return err
	}
	if err := d.addMetricsReader(ctx); err != nil {
		return err
	}
	if err := d.show(ctx, "api-resources", "--api-group=live.liveroom.io"); err != nil {
		return err
	}
	return d.show(ctx, "get", "serviceaccounts,roles,rolebindings", "-n", operatorNS)
}

// apply applies rendered manifests as `kubectl apply --server-side` would, CRDs first: a
// LiveApp is only known once its CRD is established.
func (d *demo) apply(ctx context.Context, docs []string) (string, error) {
	var crds, rest []string
	for _, doc := range docs {
		if strings.Contains(doc, "\nkind: CustomResourceDefinition\n") {
			crds = append(crds, doc)
		} else {
			rest = append(rest, doc)
		}
	}
	out, err := d.cluster.Kubectl(ctx, strings.Join(crds, "\n---\n"), "apply", "--server-side", "-f", "-")
	if err != nil {
		return out, err
	}
	if _, err := d.get(ctx, "wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=liveroom-operator", "--timeout=60s"); err != nil {
		return out, err
	}
	more, err := d.cluster.Kubectl(ctx, strings.Join(rest, "\n---\n"), "apply", "--server-side", "-f", "-")
	return out + more, err
}

// addMetricsReader creates the ServiceAccount whose token the demo shows for reading metrics.
func (d *demo) addMetricsReader(ctx context.Context) error {
	for _, args := range [][]string{
		{"create", "serviceaccount", metricsSA, "-n", operatorNS},
		{"create", "clusterrolebinding", metricsSA, "--clusterrole=liveroom-metrics-reader", "--serviceaccount=" + operatorNS + ":" + metricsSA},
	} {
		if _, err := d.get(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// startManagers runs the callback server and the controller, each with its
// ServiceAccount's token, as their Deployments do.
func (d *demo) startManagers(ctx context.Context) error {
	ports, err := localcluster.FreePorts(1)
	if err != nil {
		return err
	}
	callbackAddr := "127.0.0.1:" + ports[0]
	if err := d.startManager(ctx, "callback", "liveroom-callback-server", "--callback-bind-address="+callbackAddr); err != nil {
		return err
	}
	d.callbackURL, d.callbackReplicas = "http://"+callbackAddr+"/callback", 1
	return d.startManager(ctx, "controller", "liveroom-controller-manager", "--leader-elect", "--leader-election-namespace="+operatorNS)
}

// startManager runs bin/manager in role as ServiceAccount sa and waits until it is ready.
// POD_NAMESPACE and POD_NAME are set as the Deployments set them: the callback server
// keeps its Lease, named after the pod, in the operator's namespace.
func (d *demo) startManager(ctx context.Context, role, sa string, roleArgs ...string) error {
	kubeconfig := filepath.Join(d.work, role+".kubeconfig")
	if err := d.cluster.ServiceAccountKubeconfig(ctx, operatorNS, sa, kubeconfig); err != nil {
		return err
	}
	ports, err := localcluster.FreePorts(2)
	if err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(d.work, "logs", role+".log"))
	if err != nil {
		return err
	}
	args := append([]string{
		"--role=" + role, "--kubeconfig=" + kubeconfig,
		"--metrics-bind-address=127.0.0.1:" + ports[0], "--health-probe-bind-address=127.0.0.1:" + ports[1],
	}, roleArgs...)
	cmd := exec.Command(filepath.Join(d.root, "bin", "manager"), args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+operatorNS, "POD_NAME=demo-"+role)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	d.managers = append(d.managers, cmd)
	d.metricsURLs = append(d.metricsURLs, role+": https://127.0.0.1:"+ports[0]+"/metrics")
	return d.waitFor(ctx, role+" ready", func() (bool, error) {
		status, err := httpGet(ctx, "http://127.0.0.1:"+ports[1]+"/readyz")
		return err == nil && status == http.StatusOK, nil
	})
}

func httpGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
