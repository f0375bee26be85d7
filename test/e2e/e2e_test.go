// Package e2e drives the built operator as a user would: bin/manager runs as separate
// processes in its two roles, callback server and controller, each with the ServiceAccount
// and RBAC that config/default installs for it, on a local cluster with a real garbage
// collector, Job controller, scheduler and kwok nodes.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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
	// The ServiceAccounts of config/default's two Deployments.
	callbackSA   = "liveroom-callback-server"
	controllerSA = "liveroom-controller-manager"
	// A ServiceAccount of Prometheus' kind, bound to ClusterRole liveroom-metrics-reader.
	metricsNS = "monitoring"
	metricsSA = "prometheus"
)

var rootFlag = flag.String("root", "", "repository root (default: found from this file)")

var (
	cluster *localcluster.Cluster
	work    string
	// metricsToken is a token of metricsSA, which may GET /metrics.
	metricsToken string
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
		BinDir: filepath.Join(root(), "bin", "k8s", testenv.K8sVersion()), Dir: work, Nodes: 2, Controllers: true,
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
// apply, then applies all of it but the Deployments and PodDisruptionBudget: the tests run
// the manager binary themselves, with the installed ServiceAccounts' credentials. It also
// creates a metrics reader as a user would for Prometheus.
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
	for _, args := range [][]string{
		{"create", "namespace", roomNS},
		{"create", "namespace", metricsNS},
		{"create", "serviceaccount", metricsSA, "-n", metricsNS},
		{"create", "clusterrolebinding", "e2e-metrics-reader", "--clusterrole=liveroom-metrics-reader", "--serviceaccount=" + metricsNS + ":" + metricsSA},
	} {
		if _, err := cluster.Kubectl(ctx, "", args...); err != nil {
			return err
		}
	}
	metricsToken, err = createToken(ctx, metricsNS, metricsSA)
	return err
}

// createToken is a token of a ServiceAccount, from `kubectl create token`.
func createToken(ctx context.Context, namespace, name string) (string, error) {
	out, err := cluster.Kubectl(ctx, "", "create", "token", name, "-n", namespace, "--duration=24h")
	return strings.TrimSpace(out), err
}

// manager is one bin/manager process, in one role.
type manager struct {
	name string
	cmd  *exec.Cmd
	// callback is the callback server's address; "" for the controller role.
	callback        string
	metrics, probes string
	done            chan struct{}
}

var managerCount atomic.Int32

// startCallback runs bin/manager --role=callback as the callback server's ServiceAccount,
// as its Deployment would, with rooms in roomNS unless extra flags say otherwise.
func startCallback(t *testing.T, extra ...string) *manager {
	t.Helper()
	tokens := filepath.Join(work, "tokens")
	if err := os.WriteFile(tokens, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := localcluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	callback := "127.0.0.1:" + ports[0]
	m := startManager(t, "callback", callbackSA, append([]string{
		"--callback-token-file=" + tokens, "--callback-bind-address=" + callback,
	}, extra...))
	m.callback = callback
	return m
}

// startController runs bin/manager --role=controller as the controller's ServiceAccount,
// leader-elected as its Deployment is, with rooms in roomNS unless extra flags say otherwise.
func startController(t *testing.T, extra ...string) *manager {
	t.Helper()
	return startManager(t, "controller", controllerSA, append([]string{
		"--leader-elect", "--leader-election-namespace=" + operatorNS, "--ended-room-ttl=1h",
	}, extra...))
}

// startManager runs bin/manager in role as ServiceAccount sa and waits until it is ready.
func startManager(t *testing.T, role, sa string, roleArgs []string) *manager {
	t.Helper()
	n := managerCount.Add(1)
	name := fmt.Sprintf("%s-%d", role, n)
	kubeconfig := filepath.Join(work, name+".kubeconfig")
	if err := cluster.ServiceAccountKubeconfig(context.Background(), operatorNS, sa, kubeconfig); err != nil {
		t.Fatal(err)
	}
	ports, err := localcluster.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(work, "logs", "manager-"+name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	m := &manager{name: name, metrics: "127.0.0.1:" + ports[0], probes: "127.0.0.1:" + ports[1], done: make(chan struct{})}
	args := append([]string{
		"--role=" + role, "--kubeconfig=" + kubeconfig, "--sdk-app-id=" + appID, "--room-namespace=" + roomNS,
		"--metrics-bind-address=" + m.metrics, "--health-probe-bind-address=" + m.probes, "--zap-log-level=debug",
	}, roleArgs...)
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

// isLeader reads controller-runtime's leader election gauge from the manager's metrics,
// as Prometheus would: over HTTPS with the metrics reader's token.
func (m *manager) isLeader() bool {
	status, body, err := m.getMetrics(metricsToken)
	if err != nil || status != http.StatusOK {
		return false
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "leader_election_master_status") && strings.HasSuffix(sc.Text(), " 1") {
			return true
		}
	}
	return false
}

// metricsClient trusts any certificate: the manager's is self-signed, as with the
// ServiceMonitor of config/prometheus.
var metricsClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// getMetrics GETs the manager's /metrics with a bearer token ("" for none).
func (m *manager) getMetrics(bearer string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "https://"+m.metrics+"/metrics", nil)
	if err != nil {
		return 0, "", err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
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
