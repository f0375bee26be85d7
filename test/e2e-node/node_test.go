package e2enode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

const (
	// The example app of config/default as the overlay makes it the user's: its SDKAppID
	// and the token set in Tencent's console.
	appID    = "1400000077"
	token    = "e2e-node-token"
	appName  = "example"
	partOf   = "app.kubernetes.io/part-of=liveroom-operator"
	callback = "liveroom-callback" // the Service Tencent's callbacks go to
	policy   = "record-live"
	// leaderLease is the controller's leader election Lease.
	leaderLease = "liveroom-operator.live.liveroom.io"
)

// install is what the overlay put into the cluster.
type install struct {
	overlay  string
	rendered string
	// namespace is the operator's: its Deployments, Services and Leases.
	namespace string
	// roomNS is the example app's, where its rooms, RecordingPolicies and Jobs are.
	roomNS string
	c      client.Client
}

func TestRealNode(t *testing.T) {
	in := &install{}
	p := &phases{t: t}
	p.run("install", in.apply)
	p.run("pods-secure", in.podsAreConfined)
	p.run("in-cluster-api", in.apiThroughKubernetesService)
	p.run("callbacks-via-service", in.callbacksBecomeRooms)
	p.run("recording-job", in.recordingRunsAndStops)
	p.run("leader-pod-lost", in.leaderLoss)
	p.run("rollout-restart", in.rolloutRestart)
	p.run("operator-logs", in.saveLogs)
	p.run("uninstall", in.uninstall)
	p.run("no-registry-pulls", imagesStayLocal)
	p.print()
}

// apply installs config/default through an overlay that changes only the image and the
// example app's values, as a user would: its SDKAppID, and its token Secret with the token
// set in Tencent. It waits until every Deployment of the install is available and every
// callback-server replica accepts the app's callbacks.
func (in *install) apply(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(livev1.AddToScheme(scheme)).To(Succeed())
	var err error
	in.c, err = client.New(cluster.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	in.overlay = filepath.Join(work, "overlay")
	g.Expect(os.MkdirAll(in.overlay, 0o755)).To(Succeed())
	defaultDir := filepath.Join(root(), "config", "default")
	base, err := filepath.Rel(in.overlay, defaultDir)
	g.Expect(err).NotTo(HaveOccurred())
	// The example app's namespace, where its token Secret is.
	in.roomNS = renderedNamespace(t, kubectl(t, "kustomize", defaultDir), "LiveApp", appName)
	colon := strings.LastIndex(managerName, ":")
	name, tag := managerName[:colon], managerName[colon+1:]
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
images:
- name: ghcr.io/liveroom-io/liveroom-operator
  newName: %s
  newTag: %s
patches:
- target: {kind: LiveApp, name: %s}
  patch: |-
    - op: replace
      path: /spec/sdkAppId
      value: %s
secretGenerator:
- name: %s-callback-tokens
  namespace: %s
  behavior: replace
  type: Opaque
  options: {disableNameSuffixHash: true}
  files:
  - tokens=callback-tokens.txt
`, base, name, tag, appName, appID, appName, in.roomNS)
	g.Expect(os.WriteFile(filepath.Join(in.overlay, "kustomization.yaml"), []byte(kustomization), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(in.overlay, "callback-tokens.txt"), []byte(token+"\n"), 0o600)).To(Succeed())

	in.rendered = kubectl(t, "kustomize", in.overlay)
	in.namespace = renderedNamespace(t, in.rendered, "Deployment", "")
	g.Expect(renderedNamespace(t, in.rendered, "LiveApp", appName)).To(Equal(in.roomNS))
	g.Expect(in.rendered).To(ContainSubstring("image: "+managerName), "the overlay sets the image")

	// The CRDs first: kubectl cannot map the example LiveApp before its CRD is established.
	var crds []string
	for _, doc := range strings.Split(in.rendered, "\n---\n") {
		if strings.Contains(doc, "\nkind: CustomResourceDefinition\n") {
			crds = append(crds, doc)
		}
	}
	g.Expect(crds).NotTo(BeEmpty())
	applyManifest(t, strings.Join(crds, "\n---\n"))
	kubectl(t, "wait", "--for=condition=Established", "crd", "-l", partOf, "--timeout=60s")
	out := kubectl(t, "apply", "--server-side", "-k", in.overlay)
	t.Logf("kubectl apply:\n%s", out)
	g.Expect(out).NotTo(ContainSubstring("PodSecurity"), "no Pod Security warning")
	g.Expect(out).NotTo(ContainSubstring("Warning:"))

	ns := &corev1.Namespace{}
	g.Expect(in.c.Get(ctx, client.ObjectKey{Name: in.namespace}, ns)).To(Succeed())
	g.Expect(ns.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))

	in.waitAvailable(t)
	in.waitServed(t)
}

// renderedNamespace is the namespace of the rendered object of a kind (and name, unless
// ""); it fails the test unless there is one.
func renderedNamespace(t *testing.T, rendered, kind, name string) string {
	t.Helper()
	for _, doc := range strings.Split(rendered, "\n---\n") {
		var obj struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Kind == kind && (name == "" || obj.Metadata.Name == name) && obj.Metadata.Namespace != "" {
			return obj.Metadata.Namespace
		}
	}
	t.Fatalf("the install has no %s %s", kind, name)
	return ""
}

// waitServed waits until the example LiveApp is Ready and every callback-server replica's
// Lease says it has loaded the app's tokens: from then on every replica behind the
// Service accepts the app's callbacks.
func (in *install) waitServed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	NewWithT(t).Eventually(func(g Gomega) {
		app := &livev1.LiveApp{}
		g.Expect(in.c.Get(ctx, client.ObjectKey{Namespace: in.roomNS, Name: appName}, app)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(app.Status.Conditions, livev1.ConditionReady)).To(BeTrue(), "LiveApp %s Ready: %v", appName, app.Status.Conditions)
		for _, d := range in.deployments(t) {
			if d.Labels["app.kubernetes.io/component"] != "callback-server" {
				continue
			}
			for _, pod := range in.podsOf(t, &d) {
				lease := &coordinationv1.Lease{}
				g.Expect(in.c.Get(ctx, client.ObjectKey{Namespace: in.namespace, Name: pod.Name}, lease)).To(Succeed(), "Lease of replica %s", pod.Name)
				g.Expect(apps.LoadedTokens(lease)).To(HaveKey(string(app.UID)), "replica %s has loaded the app's tokens", pod.Name)
			}
		}
	}, 2*time.Minute, 200*time.Millisecond).Should(Succeed())
}

// deployments are the Deployments of the install.
func (in *install) deployments(t *testing.T) []appsv1.Deployment {
	t.Helper()
	var list appsv1.DeploymentList
	if err := in.c.List(context.Background(), &list, client.InNamespace(in.namespace), client.MatchingLabels{"app.kubernetes.io/part-of": "liveroom-operator"}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) == 0 {
		t.Fatal("the install has no Deployment")
	}
	return list.Items
}

// waitAvailable waits for every Deployment's rollout and every one of its Pods Ready.
func (in *install) waitAvailable(t *testing.T) {
	t.Helper()
	for _, d := range in.deployments(t) {
		out, err := cluster.Kubectl(context.Background(), "", "rollout", "status", "-n", in.namespace, "deployment/"+d.Name, "--timeout=3m")
		if err != nil {
			dumpPods(t, in.namespace)
			t.Fatalf("deployment %s: %v", d.Name, err)
		}
		t.Log(strings.TrimSpace(out))
	}
	NewWithT(t).Eventually(func(g Gomega) {
		for _, d := range in.deployments(t) {
			pods := in.podsOf(t, &d)
			g.Expect(pods).To(HaveLen(int(*d.Spec.Replicas)), "pods of %s", d.Name)
			for _, p := range pods {
				g.Expect(podReady(&p)).To(BeTrue(), "pod %s Ready", p.Name)
			}
		}
	}, 2*time.Minute, 200*time.Millisecond).Should(Succeed())
}

// podsOf lists a Deployment's Pods that are not terminating.
func (in *install) podsOf(t *testing.T, d *appsv1.Deployment) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := in.c.List(context.Background(), &list, client.InNamespace(in.namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			pods = append(pods, p)
		}
	}
	return pods
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podsAreConfined checks on the node itself, not from the Pod spec, that every container
// of the install runs as 65532 with a read-only root filesystem, no capabilities, no new
// privileges and a seccomp filter.
func (in *install) podsAreConfined(t *testing.T) {
	g := NewWithT(t)
	checked := 0
	for _, d := range in.deployments(t) {
		for _, pod := range in.podsOf(t, &d) {
			for _, cs := range pod.Status.ContainerStatuses {
				pid := containerPID(t, cs.ContainerID)
				what := fmt.Sprintf("%s/%s (pid %d)", pod.Name, cs.Name, pid)
				status := procStatus(t, pid)
				g.Expect(status["Uid"]).To(Equal("65532\t65532\t65532\t65532"), "uid of %s", what)
				g.Expect(status["Gid"]).To(Equal("65532\t65532\t65532\t65532"), "gid of %s", what)
				g.Expect(status["CapEff"]).To(Equal("0000000000000000"), "capabilities of %s", what)
				g.Expect(status["NoNewPrivs"]).To(Equal("1"), "no_new_privs of %s", what)
				g.Expect(status["Seccomp"]).To(Equal("2"), "seccomp filter of %s", what)
				g.Expect(rootMountOptions(t, pid)).To(ContainElement("ro"), "root mount of %s", what)
				err := os.WriteFile(fmt.Sprintf("/proc/%d/root/write-probe", pid), []byte("x"), 0o644)
				g.Expect(errors.Is(err, syscall.EROFS)).To(BeTrue(), "writing to / of %s: %v", what, err)
				checked++
			}
		}
	}
	g.Expect(checked).To(BeNumerically(">=", 2))
}

// containerPID finds a container's process through containerd's task list.
func containerPID(t *testing.T, containerID string) int {
	t.Helper()
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := cluster.Ctr(context.Background(), "tasks", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no running task %s in:\n%s", id, out)
	return 0
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.TrimSpace(v)
		}
	}
	return status
}

// rootMountOptions are the per-mount options of / as the process sees it.
func rootMountOptions(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			opts = strings.Split(f[5], ",") // the last mount on / wins
		}
	}
	return opts
}

func processEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// apiThroughKubernetesService: the manager has no kubeconfig, so it uses the in-cluster
// configuration: the kubernetes Service, whose endpoint is the API server on the node.
func (in *install) apiThroughKubernetesService(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	svc := &corev1.Service{}
	g.Expect(in.c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, svc)).To(Succeed())
	for _, d := range in.deployments(t) {
		for _, pod := range in.podsOf(t, &d) {
			for _, cs := range pod.Status.ContainerStatuses {
				env := processEnv(t, containerPID(t, cs.ContainerID))
				g.Expect(env["KUBERNETES_SERVICE_HOST"]).To(Equal(svc.Spec.ClusterIP), "%s/%s", pod.Name, cs.Name)
				g.Expect(env).NotTo(HaveKey("KUBECONFIG"))
				for _, arg := range d.Spec.Template.Spec.Containers[0].Args {
					g.Expect(arg).NotTo(HavePrefix("--kubeconfig"))
				}
			}
		}
	}
	// The leader elected itself through the API server: the Lease proves the way works.
	g.Eventually(func() string { return in.leader(t) }, time.Minute, 200*time.Millisecond).ShouldNot(BeEmpty())
}

// leader is the Pod that holds the install's leader election Lease.
func (in *install) leader(t *testing.T) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := in.c.Get(context.Background(), client.ObjectKey{Namespace: in.namespace, Name: leaderLease}, l); err != nil {
		if apierrors.IsNotFound(err) {
			return ""
		}
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	// controller-runtime's identity is "<hostname>_<uuid>"; a Pod's hostname is its name.
	holder, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	pod := &corev1.Pod{}
	if err := in.c.Get(context.Background(), client.ObjectKey{Namespace: in.namespace, Name: holder}, pod); err == nil {
		return holder
	}
	return ""
}

// callbackURL is the liveroom-callback Service's ClusterIP: kube-proxy carries what is
// sent there to the Pods.
func (in *install) callbackURL(t *testing.T) string {
	t.Helper()
	svc := &corev1.Service{}
	if err := in.c.Get(context.Background(), client.ObjectKey{Namespace: in.namespace, Name: callback}, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Fatalf("Service %s has no ClusterIP", callback)
	}
	return fmt.Sprintf("http://%s:%d/callback", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// send posts a callback of the example app signed with its token; it returns nil only for
// an HTTP 200 whose ActionStatus is OK.
func send(url, command, body string) error {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	status, answer, err := post(url, command, "&Sign="+webhookserver.Sign(token, rt)+"&RequestTime="+rt, body)
	if err != nil {
		return err
	}
	var parsed struct{ ActionStatus string }
	if status != http.StatusOK || json.Unmarshal(answer, &parsed) != nil || parsed.ActionStatus != "OK" {
		return fmt.Errorf("%s: %d %s", command, status, bytes.TrimSpace(answer))
	}
	return nil
}

// post posts a callback of the example app with auth (Sign and RequestTime, or "") in its
// query, and returns the HTTP status and the answer.
func post(url, command, auth, body string) (int, []byte, error) {
	full := fmt.Sprintf("%s?SdkAppid=%s&CallbackCommand=%s&contenttype=json%s", url, appID, command, auth)
	resp, err := httpClient.Post(full, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}

func createBody(roomID, roomType, owner string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":%q,"RoomName":"Room %s","RoomType":%q,"Owner_Account":%q,"MaxMemberCount":300,"CreateTime":%d}}`,
		roomID, roomID, roomType, owner, time.Now().Unix())
}

func destroyBody(roomID string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDestroyRoom","RoomId":%q,"EventType":"DestroyByUser","EventTime":%d}`, roomID, time.Now().UnixMilli())
}

func (in *install) room(roomID string) (*livev1.LiveRoom, error) {
	room := &livev1.LiveRoom{}
	return room, in.c.Get(context.Background(), client.ObjectKey{Namespace: in.roomNS, Name: roomID}, room)
}

func (in *install) callbacksBecomeRooms(t *testing.T) {
	g := NewWithT(t)
	url := in.callbackURL(t)
	// Ready Pods are routable once kube-proxy has synced the Service's endpoints: any HTTP
	// answer (405 to a GET) says so.
	g.Eventually(func() error {
		resp, err := httpClient.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed(), "Service %s routes to the Pods", callback)
	for i := range 3 {
		id := fmt.Sprintf("svc-room-%d", i)
		g.Expect(send(url, "Live.CallbackAfterCreateRoom", createBody(id, "Voice", "owner-"+id))).To(Succeed())
		room, err := in.room(id)
		g.Expect(err).NotTo(HaveOccurred(), "the answer comes after the room is stored")
		g.Expect(room.Spec.RoomID).To(Equal(id))
		g.Expect(room.Spec.Owner).To(Equal("owner-" + id))
	}
	// An unsigned callback is refused and stores nothing.
	status, answer, err := post(url, "Live.CallbackAfterCreateRoom", "", createBody("unsigned-room", "Voice", "mallory"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(status).To(Equal(http.StatusUnauthorized), "unsigned: %s", answer)
	_, err = in.room("unsigned-room")
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no room from an unsigned callback: %v", err)
}

// recordingRunsAndStops: a RecordingPolicy's Job runs the recorder image for real, with the
// room's values in its environment; the room's destroy callback suspends the Job and the
// container gets SIGTERM and stops gracefully.
func (in *install) recordingRunsAndStops(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	applyManifest(t, recordingPolicy(in.roomNS))
	url := in.callbackURL(t)
	const roomID = "rec-room-1"
	g.Expect(send(url, "Live.CallbackAfterCreateRoom", createBody(roomID, "Live", "anchor-7"))).To(Succeed())

	var pod corev1.Pod
	g.Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(in.c.List(ctx, &pods, client.InNamespace(in.roomNS), client.MatchingLabels{livev1.RoomLabel: roomID})).To(Succeed())
		g.Expect(pods.Items).To(HaveLen(1))
		pod = pods.Items[0]
		g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
	}, 2*time.Minute, 200*time.Millisecond).Should(Succeed(), "the recording Pod runs")

	logs := followLogs(t, in.roomNS, pod.Name)
	g.Eventually(logs.String, 30*time.Second, 100*time.Millisecond).Should(SatisfyAll(
		ContainSubstring(`msg="Recording started"`),
		ContainSubstring("roomID="+roomID),
		ContainSubstring("sdkAppID="+appID),
		ContainSubstring("owner=anchor-7"),
		ContainSubstring(`roomName="Room `+roomID+`"`),
	))

	g.Expect(send(url, "Live.CallbackAfterDestroyRoom", destroyBody(roomID))).To(Succeed())
	g.Eventually(func(g Gomega) {
		var jobs batchv1.JobList
		g.Expect(in.c.List(ctx, &jobs, client.InNamespace(in.roomNS), client.MatchingLabels{livev1.RoomLabel: roomID})).To(Succeed())
		g.Expect(jobs.Items).To(HaveLen(1))
		g.Expect(jobs.Items[0].Spec.Suspend).To(HaveValue(BeTrue()))
	}, time.Minute, 200*time.Millisecond).Should(Succeed(), "the room's end suspends its Job")
	g.Eventually(logs.done, time.Minute, 100*time.Millisecond).Should(BeClosed(), "the container stops")
	g.Expect(logs.String()).To(ContainSubstring(`msg="Recording stopped gracefully" signal="terminated signal received"`))
}

func recordingPolicy(namespace string) string {
	return fmt.Sprintf(`apiVersion: live.liveroom.io/v1alpha1
kind: RecordingPolicy
metadata:
  name: %s
  namespace: %s
spec:
  roomSelector:
    matchLabels:
      live.liveroom.io/room-type: Live
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 10
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            runAsGroup: 65532
            seccompProfile: {type: RuntimeDefault}
          containers:
          - name: recorder
            image: %s
            imagePullPolicy: Never
            resources:
              requests: {cpu: 10m, memory: 16Mi}
              limits: {memory: 64Mi}
            securityContext:
              allowPrivilegeEscalation: false
              readOnlyRootFilesystem: true
              capabilities: {drop: [ALL]}
`, policy, namespace, recorderName)
}

// logStream collects `kubectl logs -f` of a Pod until its container ends.
type logStream struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func (l *logStream) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logStream) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func followLogs(t *testing.T, namespace, pod string) *logStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &logStream{done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, filepath.Join(cluster.BinDir, "kubectl"),
		append(cluster.KubectlFlags(), "logs", "-f", "-n", namespace, pod)...)
	cmd.Stdout, cmd.Stderr = l, l
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(l.done) }()
	t.Cleanup(func() { cancel(); <-l.done })
	return l
}

// load sends a callback every 100 ms until stopped and counts failures: create callbacks
// of rooms no policy records, and every 25th a Live room that gets a Job (few enough that
// their Pods do not load the node).
type load struct {
	url       string
	sent, bad atomic.Int64
	errs      []string
	mu        sync.Mutex
	live      []string
	stop      chan struct{}
	done      chan struct{}
}

func startLoad(url, prefix string) *load {
	l := &load{url: url, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var wg sync.WaitGroup
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				wg.Wait()
				return
			case <-tick.C:
			}
			id, roomType := fmt.Sprintf("%s-%d", prefix, i), "Voice"
			if i%25 == 0 {
				roomType = "Live"
				l.mu.Lock()
				l.live = append(l.live, id)
				l.mu.Unlock()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.sent.Add(1)
				if err := send(l.url, "Live.CallbackAfterCreateRoom", createBody(id, roomType, "owner")); err != nil {
					l.bad.Add(1)
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), id, err))
					l.mu.Unlock()
				}
			}()
		}
	}()
	return l
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	<-l.done
	t.Logf("%d callbacks sent every 100 ms, %d failed", l.sent.Load(), l.bad.Load())
	if l.bad.Load() > 0 {
		t.Errorf("%d of %d callbacks failed:\n%s", l.bad.Load(), l.sent.Load(), strings.Join(l.errs, "\n"))
	}
}

// leaderLoss deletes the controller leader's Pod under a steady flow of callbacks: another
// Pod takes the Lease over, every callback is answered OK, and no room gets a second Job.
func (in *install) leaderLoss(t *testing.T) {
	g := NewWithT(t)
	leader := in.leader(t)
	g.Expect(leader).NotTo(BeEmpty())
	l := startLoad(in.callbackURL(t), "failover")
	time.Sleep(time.Second) // callbacks flow before the loss
	kubectl(t, "delete", "pod", "-n", in.namespace, leader, "--wait=false")
	start := time.Now()
	g.Eventually(func() string { return in.leader(t) }, 2*time.Minute, 100*time.Millisecond).
		Should(And(Not(BeEmpty()), Not(Equal(leader))), "another Pod leads")
	t.Logf("%s took the lead %s after %s was deleted", in.leader(t), time.Since(start).Round(time.Millisecond), leader)
	in.waitAvailable(t)
	time.Sleep(time.Second) // and after the replacement is in
	l.finish(t)
	in.checkOneJobPerRoom(t, l.live)
}

func (in *install) checkOneJobPerRoom(t *testing.T, rooms []string) {
	t.Helper()
	ctx := context.Background()
	NewWithT(t).Eventually(func(g Gomega) {
		for _, id := range rooms {
			var jobs batchv1.JobList
			g.Expect(in.c.List(ctx, &jobs, client.InNamespace(in.roomNS), client.MatchingLabels{livev1.RoomLabel: id})).To(Succeed())
			g.Expect(jobs.Items).To(HaveLen(1), "Jobs of room %s", id)
		}
	}, time.Minute, 500*time.Millisecond).Should(Succeed())
	// End the rooms: their recorder Pods stop, which keeps the node's load low.
	url := in.callbackURL(t)
	for _, id := range rooms {
		if err := send(url, "Live.CallbackAfterDestroyRoom", destroyBody(id)); err != nil {
			t.Error(err)
		}
	}
}

// rolloutRestart restarts every Deployment of the install under a steady flow of
// callbacks: none may fail.
func (in *install) rolloutRestart(t *testing.T) {
	l := startLoad(in.callbackURL(t), "rollout")
	time.Sleep(time.Second)
	for _, d := range in.deployments(t) {
		kubectl(t, "rollout", "restart", "-n", in.namespace, "deployment/"+d.Name)
	}
	in.waitAvailable(t)
	time.Sleep(time.Second)
	l.finish(t)
	in.checkOneJobPerRoom(t, l.live)
}

// saveLogs keeps the operator's logs beside the cluster's and shows the errors in them.
func (in *install) saveLogs(t *testing.T) {
	var all strings.Builder
	for _, d := range in.deployments(t) {
		for _, pod := range in.podsOf(t, &d) {
			out := kubectl(t, "logs", "-n", in.namespace, pod.Name, "--all-containers")
			fmt.Fprintf(&all, "--- %s\n%s", pod.Name, out)
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, `"level":"error"`) {
					t.Logf("%s: %s", pod.Name, line)
				}
			}
		}
	}
	if err := os.WriteFile(filepath.Join(work, "logs", "operator.log"), []byte(all.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// uninstall deletes the install and checks that nothing of it is left.
func (in *install) uninstall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// Deleting the namespaces and CRDs first deletes the LiveApp too: kubectl then finds it
	// gone, which is no error.
	out, err := cluster.Kubectl(ctx, "", "delete", "-k", in.overlay, "--ignore-not-found", "--wait=true", "--timeout=3m")
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("kubectl delete:\n%s", out)
	for _, ns := range []string{in.namespace, in.roomNS} {
		g.Eventually(func() error {
			return in.c.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
		}, 3*time.Minute, 500*time.Millisecond).Should(Satisfy(apierrors.IsNotFound), "namespace %s gone", ns)
	}
	left, err := cluster.Kubectl(ctx, in.rendered, "get", "-f", "-", "--ignore-not-found", "-o", "name")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.TrimSpace(left)).To(BeEmpty(), "objects of the install left")
	crds := kubectl(t, "get", "crd", "-o", "name")
	g.Expect(crds).NotTo(ContainSubstring("liveroom.io"))
	for _, kind := range []string{"clusterroles", "clusterrolebindings"} {
		g.Expect(strings.TrimSpace(kubectl(t, "get", kind, "-l", partOf, "-o", "name"))).To(BeEmpty(), "%s left", kind)
	}
}

// imagesStayLocal: the node pulls from no registry; an image it lacks fails at once
// against the closed local port that every registry resolves to.
func imagesStayLocal(t *testing.T) {
	applyManifest(t, `apiVersion: v1
kind: Pod
metadata:
  name: missing-image
  namespace: default
spec:
  containers:
  - name: c
    image: liveroom-missing:none
`)
	NewWithT(t).Eventually(func() string {
		return kubectl(t, "get", "pod", "missing-image", "-n", "default", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}")
	}, time.Minute, 200*time.Millisecond).Should(ContainSubstring("127.0.0.1:9"))
	kubectl(t, "delete", "pod", "missing-image", "-n", "default", "--wait=false")
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cluster.Kubectl(context.Background(), "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func applyManifest(t *testing.T, manifest string) {
	t.Helper()
	out, err := cluster.Kubectl(context.Background(), manifest, "apply", "--server-side", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "Warning:") {
		t.Errorf("kubectl apply warned:\n%s", out)
	}
}

// dumpPods prints what the node says about the install's Pods when they do not start.
func dumpPods(t *testing.T, namespace string) {
	out, _ := cluster.Kubectl(context.Background(), "", "describe", "pods", "-n", namespace)
	sc := bufio.NewScanner(strings.NewReader(out))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	t.Logf("kubectl describe pods -n %s:\n%s", namespace, strings.Join(lines, "\n"))
}
