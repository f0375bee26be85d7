// Package e2e drives the built operator as a user would: bin/manager runs as separate
// processes in its two roles, callback server and controller, each with the ServiceAccount
// and RBAC that config/default installs for it, on a local cluster with a real garbage
// collector, Job controller, scheduler and kwok nodes. Apps are LiveApps: config/default's
// example app (its token set as a user would) and those the scenarios declare.
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
	"regexp"
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
	// roomNS is the namespace of config/default's example app, where its rooms go.
	roomNS     = "live"
	operatorNS = "liveroom-system"
	// The ServiceAccounts of config/default's two Deployments.
	callbackSA   = "liveroom-callback-server"
	controllerSA = "liveroom-controller-manager"
	// A ServiceAccount of Prometheus' kind, bound to ClusterRole liveroom-metrics-reader.
	metricsNS = "monitoring"
	metricsSA = "prometheus"
)

// app is a LiveApp as the tests send its callbacks: its SDKAppID and the token Tencent
// signs them with.
type app struct {
	namespace, name string
	sdkAppID        int64
	token           string
}

// example is config/default's LiveApp, its token Secret set to token by install.
var example = app{namespace: roomNS, name: "example", sdkAppID: 1400000000, token: "e2e-token"}

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
// the manager binary themselves, with the installed ServiceAccounts' credentials. Then, as
// a user would, it replaces the placeholder in the example app's token Secret with the
// token the tests sign with, and creates a metrics reader for Prometheus.
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
	secret, err := cluster.Kubectl(ctx, "", "create", "secret", "generic", "example-callback-tokens", "-n", example.namespace,
		"--from-literal=tokens="+example.token+"\n", "--dry-run=client", "-o", "yaml")
	if err != nil {
		return err
	}
	if _, err := cluster.Kubectl(ctx, secret, "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("setting the example app's callback token: %w", err)
	}
	for _, args := range [][]string{
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
// as its Deployment would: it serves every LiveApp and keeps its replica Lease.
func startCallback(t *testing.T, extra ...string) *manager {
	t.Helper()
	ports, err := localcluster.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	callback := "127.0.0.1:" + ports[0]
	m := startManager(t, "callback", callbackSA, append([]string{"--callback-bind-address=" + callback}, extra...))
	m.callback = callback
	return m
}

// startController runs bin/manager --role=controller as the controller's ServiceAccount,
// leader-elected as its Deployment is.
func startController(t *testing.T, extra ...string) *manager {
	t.Helper()
	return startManager(t, "controller", controllerSA, append([]string{
		"--leader-elect", "--leader-election-namespace=" + operatorNS,
	}, extra...))
}

// startManager runs bin/manager in role as ServiceAccount sa and waits until it is ready.
// Each process gets a POD_NAME of its own, as each Pod has: a callback server names its
// replica Lease after it.
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
		"--role=" + role, "--kubeconfig=" + kubeconfig, "--operator-namespace=" + operatorNS,
		"--metrics-bind-address=" + m.metrics, "--health-probe-bind-address=" + m.probes, "--zap-log-level=debug",
	}, roleArgs...)
	m.cmd = exec.Command(filepath.Join(root(), "bin", "manager"), args...)
	m.cmd.Env = append(os.Environ(), "POD_NAME=e2e-"+name)
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

var callbackClient = &http.Client{Timeout: 10 * time.Second}

// sendSigned POSTs a callback of SDKAppID sdkAppID signed with token, as Tencent would.
func sendSigned(m *manager, sdkAppID int64, token, command, body string) (int, string, error) {
	return post(m, sdkAppID, signedAt(token, time.Now()), command, body)
}

// signedAt is the Sign and RequestTime query parameters of a callback signed with token at t.
func signedAt(token string, t time.Time) string {
	rt := strconv.FormatInt(t.Unix(), 10)
	return "&Sign=" + webhookserver.Sign(token, rt) + "&RequestTime=" + rt
}

// post POSTs a callback of SDKAppID sdkAppID with auth (its Sign and RequestTime
// parameters, or "" for none) in the query, and returns the HTTP status and the answer.
func post(m *manager, sdkAppID int64, auth, command, body string) (int, string, error) {
	url := fmt.Sprintf("http://%s/callback?SdkAppid=%d&CallbackCommand=%s&contenttype=json%s", m.callback, sdkAppID, command, auth)
	resp, err := callbackClient.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// send POSTs a callback of a signed with its token.
func send(m *manager, a app, command, body string) (int, string, error) {
	return sendSigned(m, a.sdkAppID, a.token, command, body)
}

func mustSend(t *testing.T, m *manager, a app, command, body string) {
	t.Helper()
	status, answer, err := send(m, a, command, body)
	if err != nil || status != http.StatusOK {
		t.Fatalf("%s of %d: %d %s %v", command, a.sdkAppID, status, answer, err)
	}
}

// probeCommand is a callback command the operator does not handle: the callback server
// authenticates it and answers OK without storing anything.
const probeCommand = "Live.CallbackAfterE2EProbe"

// waitServed waits until every callback server accepts a's callbacks: the controller has
// handed them the app's tokens.
func waitServed(t *testing.T, a app, servers ...*manager) {
	t.Helper()
	for _, m := range servers {
		NewWithT(t).Eventually(func() (int, error) {
			status, _, err := send(m, a, probeCommand, `{"CallbackCommand":"`+probeCommand+`"}`)
			return status, err
		}, timeout, 100*time.Millisecond).Should(Equal(http.StatusOK), "%s serves SDKAppID %d", m.name, a.sdkAppID)
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

// createNamespace creates a namespace for a test's app.
func createNamespace(t *testing.T, name string) {
	t.Helper()
	kubectl(t, "create", "namespace", name)
}

// createSecret creates a Secret of one key, as `kubectl create secret generic` does.
func createSecret(t *testing.T, namespace, name, key, value string) {
	t.Helper()
	kubectl(t, "create", "secret", "generic", name, "-n", namespace, "--from-literal="+key+"="+value)
}

// declareCallbackApp declares a callback-only app in a namespace of its own: its token in
// a Secret and its LiveApp, as a user would for an app whose token is set in Tencent's
// console.
func declareCallbackApp(t *testing.T, a app) {
	t.Helper()
	createNamespace(t, a.namespace)
	createSecret(t, a.namespace, a.name+"-callback-tokens", "tokens", a.token+"\n")
	applyCallbackApp(t, a)
}

// applyCallbackApp applies the LiveApp of a callback-only app whose tokens are in Secret
// NAME-callback-tokens of its namespace.
func applyCallbackApp(t *testing.T, a app) {
	t.Helper()
	applyLiveApp(t, a, fmt.Sprintf(`
callback:
  tokensSecretRef: {name: %s-callback-tokens, key: tokens}`, a.name))
}

// applyLiveApp applies a's LiveApp: its name, namespace and SDKAppID, then spec, the rest
// of its spec as YAML.
func applyLiveApp(t *testing.T, a app, spec string) {
	t.Helper()
	kubectlApply(t, fmt.Sprintf(`apiVersion: live.liveroom.io/v1alpha1
kind: LiveApp
metadata:
  name: %s
  namespace: %s
spec:
  sdkAppId: %d%s
`, a.name, a.namespace, a.sdkAppID, strings.ReplaceAll(spec, "\n", "\n  ")))
}

// appCondition is "status/reason" of one condition of a's LiveApp.
func appCondition(t *testing.T, a app, condition string) string {
	t.Helper()
	return kubectl(t, "get", "liveapp", a.name, "-n", a.namespace, "-o",
		fmt.Sprintf(`jsonpath={.status.conditions[?(@.type==%q)].status}/{.status.conditions[?(@.type==%q)].reason}`, condition, condition))
}

// events lists "type reason: note" of the Events about an object.
func events(t *testing.T, namespace, kind, name string) string {
	t.Helper()
	return kubectl(t, "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind="+kind+",involvedObject.name="+name,
		"-o", `jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\n"}{end}`)
}

// table parses kubectl's default output: the header's columns, and the rows keyed by
// their NAME, each mapping a column to its value. Columns start where the header's
// titles do (a title may hold one space, as ROOM ID does).
func table(out string) (header []string, rows map[string]map[string]string) {
	rows = map[string]map[string]string{}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var starts []int
	for _, loc := range columnTitle.FindAllStringIndex(lines[0], -1) {
		header = append(header, lines[0][loc[0]:loc[1]])
		starts = append(starts, loc[0])
	}
	for _, line := range lines[1:] {
		row := map[string]string{}
		for i, start := range starts {
			end := len(line)
			if i+1 < len(starts) && starts[i+1] < end {
				end = starts[i+1]
			}
			if start < end {
				row[header[i]] = strings.TrimSpace(line[start:end])
			}
		}
		rows[row["NAME"]] = row
	}
	return header, rows
}

// columnTitle is one title of kubectl's header: words separated by single spaces.
var columnTitle = regexp.MustCompile(`\S+( \S+)*`)
