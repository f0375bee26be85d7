// Command demo runs the operator on a local cluster and walks through a room's life: it
// starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok nodes,
// installs config/default as a user would (the operator and the example app), runs
// bin/manager twice as in production (--role=callback and --role=controller, each with
// its own ServiceAccount), sets the example app's callback token, adds a second app whose
// REST API is a fake Tencent, sends signed Tencent callbacks for both to the one callback
// endpoint and shows what the operator made of them. With --keep (or without --script) it
// leaves everything running until Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/localcluster"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

const (
	operatorNS = "liveroom-system"
	// metricsSA may read the metrics endpoints (ClusterRole liveroom-metrics-reader).
	metricsSA = "demo-metrics-reader"
	// roomNS is the example app's namespace (config/app).
	roomNS = "live"
	// firstRoom is the room whose life the demo follows.
	firstRoom = "tandy-test-rest"
)

type demo struct {
	root, work  string
	binDir      string
	real        bool
	cluster     *localcluster.Cluster
	managers    []*exec.Cmd
	callbackURL string
	// callbackReplicas is how many callback servers run.
	callbackReplicas int
	metricsURLs      []string // "role: URL"
	// example is config/app's LiveApp; shop the second app, with a fake Tencent REST API.
	example, shop *demoApp
	tencent       *faketencent.Server
	tencentStop   func()
	step, steps   int
}

func main() {
	script := flag.Bool("script", true, "send the demo callbacks; with --script=false only start the cluster and the operator")
	keep := flag.Bool("keep", false, "keep everything running after the demo until Ctrl-C")
	root := flag.String("root", ".", "repository root")
	node := flag.String("node", "kwok", "kwok: simulated nodes, bin/manager on this host; real: a kubelet + containerd node running the operator's image as Pods (root; `make demo NODE=real`)")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d := &demo{
		root: *root, binDir: filepath.Join(*root, "bin", "k8s", testenv.K8sVersion()), real: *node == "real",
		example: exampleApp(), steps: 5,
	}
	if *script {
		d.steps = 10
	}
	start := time.Now()
	err := d.run(ctx, *script, *keep || !*script)
	d.stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "\nFAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("\nStopped everything the demo started (%s in all).\n", time.Since(start).Round(time.Second))
}

// do runs one numbered step and says how to fix it when it fails.
func (d *demo) do(title, fix string, f func() error) error {
	d.step++
	fmt.Printf("\n==> [%d/%d] %s\n", d.step, d.steps, title)
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w\n    fix: %s", title, err, fix)
	}
	return nil
}

func (d *demo) run(ctx context.Context, script, keep bool) error {
	var err error
	if d.work, err = os.MkdirTemp("", "liveroom-demo-"); err != nil {
		return err
	}
	if d.real {
		err = d.startOnRealNode(ctx)
	} else {
		err = d.startOnHost(ctx)
	}
	if err != nil {
		return err
	}
	if err := d.do("Setting the example app's callback token in Secret "+roomNS+"/"+exampleTokensSecret+", as the README says",
		"check `kubectl describe liveapp example -n live` and the controller's log", func() error { return d.setExampleToken(ctx) }); err != nil {
		return err
	}
	if script {
		if err := d.script(ctx); err != nil {
			return err
		}
	}
	return d.do("Ready to explore", "", func() error { return d.explore(ctx, keep) })
}

// explore says how to look around, and with keep waits for Ctrl-C.
func (d *demo) explore(ctx context.Context, keep bool) error {
	fmt.Printf("    export KUBECONFIG=%s\n", d.cluster.Kubeconfig)
	fmt.Printf("    %s get liveapps,liverooms -A\n", filepath.Join(d.binDir, "kubectl"))
	fmt.Printf("    callbacks: %s (SdkAppid %d, token %q)\n", d.callbackURL, d.example.sdkAppID, d.example.token)
	fmt.Printf("    metrics: curl -k -H \"Authorization: Bearer $(%s create token %s -n %s)\" URL\n",
		filepath.Join(d.binDir, "kubectl"), metricsSA, operatorNS)
	for _, url := range d.metricsURLs {
		fmt.Printf("      %s\n", url)
	}
	fmt.Printf("    logs: %s\n", filepath.Join(d.work, "logs"))
	if keep {
		fmt.Println("    Press Ctrl-C to stop everything.")
		<-ctx.Done()
		return nil
	}
	fmt.Println("    (the cluster stops now; `make demo DEMO_FLAGS=-keep` keeps it running until Ctrl-C)")
	return nil
}

func (d *demo) show(ctx context.Context, args ...string) error {
	fmt.Printf("    $ kubectl %s\n", strings.Join(args, " "))
	out, err := d.cluster.Kubectl(ctx, "", args...)
	fmt.Print(indent(out))
	return err
}

// get is kubectl's output of args, without showing it.
func (d *demo) get(ctx context.Context, args ...string) (string, error) {
	return d.cluster.Kubectl(ctx, "", args...)
}

func (d *demo) waitFor(ctx context.Context, what string, ok func() (bool, error)) error {
	return d.waitUpTo(ctx, 90*time.Second, what, ok)
}

func (d *demo) waitUpTo(ctx context.Context, limit time.Duration, what string, ok func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		done, err := ok()
		if done {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out waiting for %s (last error: %v)", what, last)
}

func (d *demo) stop() {
	for _, m := range d.managers {
		_ = m.Process.Signal(syscall.SIGTERM)
	}
	for _, m := range d.managers {
		done := make(chan struct{})
		go func() { _ = m.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = m.Process.Kill()
		}
	}
	if d.cluster != nil {
		_ = d.cluster.Stop()
	}
	if d.tencentStop != nil {
		d.tencentStop()
	}
	if d.work != "" {
		_ = os.RemoveAll(d.work)
	}
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
