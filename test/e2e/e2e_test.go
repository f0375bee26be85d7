// Package e2e drives the built operator as a user would: bin/manager runs as separate
// processes with the ServiceAccount and RBAC that config/default installs, on a local
// cluster with a real garbage collector, Job controller, scheduler and kwok nodes.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/liveroom-io/liveroom-operator/internal/localcluster"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

const (
	appID      = "1400000000"
	token      = "e2e-token"
	roomNS     = "live"
	operatorNS = "liveroom-system"
	saName     = "liveroom-controller-manager"
)

var rootFlag = flag.String("root", "", "repository root (default: found from this file)")

var (
	cluster *localcluster.Cluster
	work    string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runSuite(m))
}

func root() string {
	if *rootFlag != "" {
		return *rootFlag
	}
	return testenv.RepoRoot()
}

func runSuite(m *testing.M) int {
	var err error
	if work, err = os.MkdirTemp("", "liveroom-e2e-"); err != nil {
		panic(err)
	}
	code := 1
	defer func() {
		if code == 0 {
			os.RemoveAll(work)
		} else {
			fmt.Fprintln(os.Stderr, "logs of the cluster components and managers are in", filepath.Join(work, "logs"))
		}
	}()
	ctx := context.Background()
	cluster, err = localcluster.Start(ctx, localcluster.Options{
		BinDir: filepath.Join(root(), "bin", "k8s", testenv.K8sVersion), Dir: work, Nodes: 2, Controllers: true,
	})
	defer func() {
		if cluster != nil {
			_ = cluster.Stop()
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local cluster:", err)
		return 1
	}
	if err := install(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "installing config/default:", err)
		return 1
	}
	code = m.Run()
	if code != 0 {
		dumpLogs()
	}
	return code
}

// install checks that everything config/default renders passes a server-side dry-run
// apply, then applies all of it but the Deployment and PodDisruptionBudget: the tests run
// the manager binary themselves, with the installed ServiceAccount's credentials.
func install(ctx context.Context) error {
	rendered, err := cluster.Kubectl(ctx, "", "kustomize", filepath.Join(root(), "config", "default"))
	if err != nil {
		return err
	}
	// The namespace and CRDs must exist before objects in them dry-run.
	var first, rest []string
	for _, doc := range strings.Split(rendered, "\n---\n") {
		switch {
		case strings.Contains(doc, "\nkind: Namespace\n"), strings.Contains(doc, "\nkind: CustomResourceDefinition\n"):
			first = append(first, doc)
		default:
			rest = append(rest, doc)
		}
	}
	if _, err := cluster.Kubectl(ctx, strings.Join(first, "\n---\n"), "apply", "--server-side", "-f", "-"); err != nil {
		return err
	}
	if _, err := cluster.Kubectl(ctx, "", "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"); err != nil {
		return err
	}
	if _, err := cluster.Kubectl(ctx, strings.Join(rest, "\n---\n"), "apply", "--server-side", "--dry-run=server", "-f", "-"); err != nil {
		return fmt.Errorf("server-side dry-run of config/default: %w", err)
	}
	var keep []string
	for _, doc := range rest {
		if !strings.Contains(doc, "\nkind: Deployment\n") && !strings.Contains(doc, "\nkind: PodDisruptionBudget\n") {
			keep = append(keep, doc)
		}
	}
	if _, err := cluster.Kubectl(ctx, strings.Join(keep, "\n---\n"), "apply", "--server-side", "-f", "-"); err != nil {
		return err
	}
	_, err = cluster.Kubectl(ctx, "", "create", "namespace", roomNS)
	return err
}

// manager is one bin/manager process.
type manager struct {
	name                      string
	cmd                       *exec.Cmd
	callback, metrics, probes string
	done                      chan struct{}
}

var managerCount atomic.Int32

// startManager runs bin/manager as the installed ServiceAccount, as the Deployment would,
// with rooms in roomNS unless extra flags say otherwise.
func startManager(t *testing.T, extra ...string) *manager {
	t.Helper()
	n := managerCount.Add(1)
	kubeconfig := filepath.Join(work, fmt.Sprintf("manager-%d.kubeconfig", n))
	if err := cluster.ServiceAccountKubeconfig(context.Background(), operatorNS, saName, kubeconfig); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(work, "tokens")
	if err := os.WriteFile(tokens, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := localcluster.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(work, "logs", fmt.Sprintf("manager-%d.log", n)))
	if err != nil {
		t.Fatal(err)
	}
	m := &manager{name: fmt.Sprintf("manager-%d", n), callback: "127.0.0.1:" + ports[0], metrics: "127.0.0.1:" + ports[1], probes: "127.0.0.1:" + ports[2], done: make(chan struct{})}
	args := append([]string{
		"--kubeconfig=" + kubeconfig, "--sdk-app-id=" + appID, "--room-namespace=" + roomNS,
		"--callback-token-file=" + tokens, "--leader-elect", "--leader-election-namespace=" + operatorNS,
		"--callback-bind-address=" + m.callback, "--metrics-bind-address=" + m.metrics,
		"--health-probe-bind-address=" + m.probes, "--ended-room-ttl=1h", "--zap-log-level=debug",
	}, extra...)
	m.cmd = exec.Command(filepath.Join(root(), "bin", "manager"), args...)
	m.cmd.Stdout, m.cmd.Stderr = log, log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(m.stop)
	NewWithT(t).Eventually(func() int {
		resp, err := http.Get("http://" + m.probes + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}, 60*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK), "%s ready", m.name)
	return m
}

// stop ends the manager as Kubernetes ends a pod: SIGTERM, then SIGKILL after a grace.
func (m *manager) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// isLeader reads controller-runtime's leader election gauge from the manager's metrics.
func (m *manager) isLeader() bool {
	resp, err := http.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "leader_election_master_status") && strings.HasSuffix(sc.Text(), " 1") {
			return true
		}
	}
	return false
}

// send POSTs a Tencent callback signed with the test token.
func send(m *manager, command, body string) (int, string, error) {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	url := fmt.Sprintf("http://%s/callback?SdkAppid=%s&CallbackCommand=%s&contenttype=json&Sign=%s&RequestTime=%s",
		m.callback, appID, command, webhookserver.Sign(token, rt), rt)
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func mustSend(t *testing.T, m *manager, command, body string) {
	t.Helper()
	status, answer, err := send(m, command, body)
	if err != nil || status != http.StatusOK {
		t.Fatalf("%s: %d %s %v", command, status, answer, err)
	}
}

func createBody(roomID, owner, roomType string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":%q,"RoomName":%q,"RoomType":%q,"Owner_Account":%q,"MaxMemberCount":300,"IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":%d,"Category":[1,2]}}`,
		roomID, roomID, roomType, owner, time.Now().Unix())
}

func destroyBody(roomID string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":%q,"EventType":"DestroyByUser","EventTime":%d}`, roomID, time.Now().UnixMilli())
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cluster.Kubectl(context.Background(), "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kubectlApply(t *testing.T, manifest string) {
	t.Helper()
	if _, err := cluster.Kubectl(context.Background(), manifest, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// recordingPolicy selects rooms of one room type with a restricted-profile Job.
func recordingPolicy(name, roomType string) string {
	return fmt.Sprintf(`apiVersion: live.liveroom.io/v1alpha1
kind: RecordingPolicy
metadata:
  name: %s
  namespace: %s
spec:
  roomSelector:
    matchLabels:
      live.liveroom.io/room-type: %s
  jobTemplate:
    spec:
      backoffLimit: 1
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: record
            image: busybox:1.36
            command: ["sh", "-c", "sleep 3600"]
`, name, roomNS, roomType)
}

var logsOnce sync.Once

func dumpLogs() {
	logsOnce.Do(func() {
		files, _ := filepath.Glob(filepath.Join(work, "logs", "manager-*.log"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			fmt.Fprintf(os.Stderr, "--- last lines of %s\n%s\n", filepath.Base(f), strings.Join(lines, "\n"))
		}
	})
}
