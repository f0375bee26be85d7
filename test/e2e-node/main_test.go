// Package e2enode installs the operator's own image with config/default, its example
// LiveApp given an SDKAppID and a callback token as a user's overlay would, on a cluster
// with one real node (kubelet, containerd, runc, CNI, kube-proxy) and checks what only
// real Pods show: the image starts under the restricted Pod Security Standard with a
// read-only root filesystem, probes pass, signed callbacks reach the Pods through their
// Service and unsigned ones are refused, recording Jobs really run and stop gracefully,
// and callbacks keep being answered through a leader's loss and a rolling update. It runs
// as root and undoes every change it makes to the host.
package e2enode

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/localcluster"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

var (
	rootFlag      = flag.String("root", "", "repository root (default: found from this file)")
	managerImage  = flag.String("manager-image", "bin/image/manager.tar", "OCI archive of the manager image (make image), relative to the root")
	recorderImage = flag.String("recorder-image", "bin/image/recorder.tar", "OCI archive of the recorder test image")
	pauseImage    = flag.String("pause-image", "bin/image/pause.tar", "OCI archive of the Pod sandbox image")
)

var (
	cluster *localcluster.Cluster
	work    string
	// The names the image archives carry, as the node's containerd knows them.
	managerName, recorderName string
)

func root() string {
	if *rootFlag != "" {
		return *rootFlag
	}
	return testenv.RepoRoot()
}

func fromRoot(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root(), p)
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runSuite(m))
}

// stopOnce stops the cluster exactly once, whichever of the normal end, a signal or the
// approaching test timeout comes first.
var stopOnce sync.Once

func stopCluster() {
	stopOnce.Do(func() {
		if cluster == nil {
			return
		}
		start := time.Now()
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the real-node cluster:", err)
			return
		}
		fmt.Fprintf(os.Stderr, "Stopped the cluster and restored the host in %s\n", time.Since(start).Round(time.Millisecond))
	})
}

func runSuite(m *testing.M) (code int) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the real-node end-to-end test runs as root (kubelet, containerd, network setup)")
		return 1
	}
	var err error
	if work, err = os.MkdirTemp("", "liveroom-e2e-node-"); err != nil {
		panic(err)
	}
	code = 1
	defer func() {
		if code == 0 {
			os.RemoveAll(work)
		} else {
			fmt.Fprintln(os.Stderr, "logs of the cluster components are in", filepath.Join(work, "logs"))
		}
	}()
	guardExit()

	ctx := context.Background()
	start := time.Now()
	defer func() {
		if cluster == nil {
			return
		}
		stopCluster()
		if diff := changed(cluster.HostStateAtStart(), localcluster.HostState()); diff != "" {
			fmt.Fprintf(os.Stderr, "the host is not as before the cluster started:\n%s", diff)
			code = 1
		}
	}()
	cluster, err = localcluster.StartNode(ctx, localcluster.NodeOptions{
		BinDir:     filepath.Join(root(), "bin", "k8s", testenv.K8sVersion()),
		Dir:        work,
		PauseImage: fromRoot(*pauseImage),
		Logf:       func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the real-node cluster:", err)
		return 1
	}
	for archive, name := range map[string]*string{*managerImage: &managerName, *recorderImage: &recorderName} {
		if *name, err = localcluster.ArchiveImageName(fromRoot(archive)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := cluster.ImportImage(ctx, fromRoot(archive)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "Real-node cluster up with the images imported in %s\n", time.Since(start).Round(time.Millisecond))
	code = m.Run()
	return code
}

// changed lists the lines of two host states that differ.
func changed(before, after []string) string {
	var diff strings.Builder
	for _, l := range before {
		if !slices.Contains(after, l) {
			fmt.Fprintf(&diff, "  - %s\n", l)
		}
	}
	for _, l := range after {
		if !slices.Contains(before, l) {
			fmt.Fprintf(&diff, "  + %s\n", l)
		}
	}
	return diff.String()
}

// guardExit stops the cluster and restores the host when the test is interrupted (Ctrl-C,
// SIGTERM) or is about to hit go test's -timeout, which would kill it without cleanup.
func guardExit() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	var deadline <-chan time.Time
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > time.Minute {
			deadline = time.After(d - 30*time.Second)
		}
	}
	go func() {
		select {
		case s := <-signals:
			fmt.Fprintf(os.Stderr, "\n%s: stopping the cluster and restoring the host\n", s)
		case <-deadline:
			fmt.Fprintln(os.Stderr, "\nthe test timeout is near: stopping the cluster and restoring the host")
		}
		stopCluster()
		fmt.Fprintln(os.Stderr, "logs of the cluster components are in", filepath.Join(work, "logs"))
		os.Exit(1)
	}()
}

// phases runs the phases in order, stops at the first that fails and prints how long
// each took.
type phases struct {
	t       *testing.T
	timings []string
}

func (p *phases) run(name string, f func(t *testing.T)) {
	p.t.Helper()
	start := time.Now()
	ok := p.t.Run(name, f)
	p.timings = append(p.timings, fmt.Sprintf("  %-28s %6.1fs", name, time.Since(start).Seconds()))
	if !ok {
		p.print()
		p.t.FailNow()
	}
}

func (p *phases) print() {
	fmt.Fprintf(os.Stderr, "Phase timings:\n%s\n", strings.Join(p.timings, "\n"))
}
