package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
)

const wait = 20 * time.Second

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestRecordingJobCreatedWithEnvAndOwner(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, policy(ns, "record", map[string]string{livev1.RoomTypeLabel: "Live"}))).To(Succeed())
	room := liveRoom(t, ns, "room-a", livev1.OriginCallback, map[string]string{livev1.RoomTypeLabel: "Live"})
	liveRoom(t, ns, "room-other-type", livev1.OriginCallback, map[string]string{livev1.RoomTypeLabel: "Other"})

	name := naming.JobName("room-a", "record")
	var job *batchv1.Job
	g.Eventually(func() error { var err error; job, err = getJob(ns, name); return err }, wait).Should(Succeed())

	g.Expect(job.Labels).To(HaveKeyWithValue(livev1.RoomLabel, "room-a"))
	g.Expect(job.Labels).To(HaveKeyWithValue(livev1.PolicyLabel, "record"))
	g.Expect(job.Spec.Template.Labels).To(HaveKeyWithValue(livev1.RoomLabel, "room-a"))
	owner := metav1.GetControllerOf(job)
	g.Expect(owner).NotTo(BeNil())
	g.Expect(owner.Kind).To(Equal("LiveRoom"))
	g.Expect(owner.UID).To(Equal(room.UID))
	for _, c := range append(job.Spec.Template.Spec.InitContainers, job.Spec.Template.Spec.Containers...) {
		env := envOf(c)
		g.Expect(env).To(HaveKeyWithValue(EnvRoomID, "id-room-a"), c.Name)
		g.Expect(env).To(HaveKeyWithValue(EnvSDKAppID, "1400000000"))
		g.Expect(env).To(HaveKeyWithValue(EnvOwner, "user3"))
		g.Expect(env).To(HaveKeyWithValue(EnvRoomName, "Room room-a"))
	}
	g.Expect(envOf(job.Spec.Template.Spec.Containers[0])).To(HaveKeyWithValue("KEEP", "me"))

	// The room of another type gets no Job.
	g.Consistently(func() bool {
		_, err := getJob(ns, naming.JobName("room-other-type", "record"))
		return apierrors.IsNotFound(err)
	}, 2*time.Second).Should(BeTrue())

	// Status shows the recording, Pending until the Job runs.
	g.Eventually(func() []livev1.RecordingStatus { return getRoom(t, room).Status.Recordings }, wait).Should(ConsistOf(
		And(HaveField("Policy", "record"), HaveField("Job", name), HaveField("Phase", livev1.RecordingPending))))

	// The Job starts: Running, and the Recording condition is true.
	job.Status.Active = 1
	job.Status.StartTime = &metav1.Time{Time: time.Now().Truncate(time.Second)}
	g.Expect(k8s.Status().Update(ctx, job)).To(Succeed())
	g.Eventually(func() string {
		r := getRoom(t, room)
		c := meta.FindStatusCondition(r.Status.Conditions, livev1.ConditionRecording)
		if c == nil || len(r.Status.Recordings) == 0 {
			return ""
		}
		return string(r.Status.Recordings[0].Phase) + "/" + string(c.Status)
	}, wait).Should(Equal("Running/True"))

	// The Job fails: the room says so.
	failJob(t, job)
	g.Eventually(func() livev1.RecordingPhase { return getRoom(t, room).Status.Recordings[0].Phase }, wait).Should(Equal(livev1.RecordingFailed))
}

func failJob(t *testing.T, job *batchv1.Job) {
	t.Helper()
	ctx := context.Background()
	cur, err := getJob(job.Namespace, job.Name)
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	cur.Status.Active = 0
	cur.Status.Failed = 1
	cur.Status.Conditions = append(cur.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "BackoffLimitExceeded"},
		batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "BackoffLimitExceeded"})
	if err := k8s.Status().Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
}

// writeCounter records the writes a reconciler makes.
type writeCounter struct {
	client.Client
	mu     sync.Mutex
	writes []string
}

func (w *writeCounter) note(verb string, o any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, fmt.Sprintf("%s %T", verb, o))
}

func (w *writeCounter) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	w.note("create", o)
	return w.Client.Create(ctx, o, opts...)
}
func (w *writeCounter) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	w.note("update", o)
	return w.Client.Update(ctx, o, opts...)
}
func (w *writeCounter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.PatchOption) error {
	w.note("patch", o)
	return w.Client.Patch(ctx, o, p, opts...)
}
func (w *writeCounter) Delete(ctx context.Context, o client.Object, opts ...client.DeleteOption) error {
	w.note("delete", o)
	return w.Client.Delete(ctx, o, opts...)
}
func (w *writeCounter) Apply(ctx context.Context, o runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	w.note("apply", o)
	return w.Client.Apply(ctx, o, opts...)
}
func (w *writeCounter) Status() client.SubResourceWriter {
	w.note("status", nil)
	return w.Client.Status()
}

func TestReconcileIsIdempotent(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, policy(ns, "record", nil))).To(Succeed())
	room := liveRoom(t, ns, "steady", livev1.OriginCallback, nil)
	g.Eventually(func() []livev1.RecordingStatus { return getRoom(t, room).Status.Recordings }, wait).Should(HaveLen(1))
	// Let the cache catch up with the status the running manager wrote.
	g.Eventually(func() bool {
		var cached livev1.LiveRoom
		_ = mgrClient.Get(ctx, client.ObjectKeyFromObject(room), &cached)
		return len(cached.Status.Recordings) == 1 && meta.IsStatusConditionTrue(cached.Status.Conditions, livev1.ConditionReady)
	}, wait).Should(BeTrue())

	counter := &writeCounter{Client: mgrClient}
	r := &LiveRoomReconciler{Client: counter, Scheme: testScheme, Recorder: &events.FakeRecorder{}, Apps: staticApps{apps.App{SDKAppID: testAppID, EndedRoomTTL: testTTL}}}
	for range 3 {
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(room)})
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(counter.writes).To(BeEmpty(), "a reconcile with nothing to do writes nothing")
	var jobs batchv1.JobList
	g.Expect(k8s.List(ctx, &jobs, client.InNamespace(ns))).To(Succeed())
	g.Expect(jobs.Items).To(HaveLen(1))
}

func suspended(ns, name string) func() bool {
	return func() bool {
		job, err := getJob(ns, name)
		return err == nil && job.Spec.Suspend != nil && *job.Spec.Suspend
	}
}

func TestRoomEndedStopsRecording(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, policy(ns, "record", nil))).To(Succeed())
	room := liveRoom(t, ns, "ending", livev1.OriginCallback, nil)
	name := naming.JobName("ending", "record")
	g.Eventually(func() error { _, err := getJob(ns, name); return err }, wait).Should(Succeed())

	endRoom(t, room, time.Now().Add(time.Hour)) // far enough ahead that the TTL does not delete it here
	g.Eventually(suspended(ns, name), wait).Should(BeTrue())
	g.Eventually(func() livev1.RecordingPhase {
		r := getRoom(t, room)
		if len(r.Status.Recordings) == 0 {
			return ""
		}
		return r.Status.Recordings[0].Phase
	}, wait).Should(Equal(livev1.RecordingStopped))
	r := getRoom(t, room)
	g.Expect(r.Status.Recordings[0].CompletionTime).NotTo(BeNil())
	g.Expect(meta.FindStatusCondition(r.Status.Conditions, livev1.ConditionRecording).Reason).To(Equal("RoomEnded"))
	_, err := getJob(ns, name)
	g.Expect(err).NotTo(HaveOccurred(), "the Job and its history stay")
}

func TestPolicyChangesStopRecordings(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	sel := map[string]string{"tier": "gold"}
	gone, paused, narrowed := policy(ns, "gone", sel), policy(ns, "paused", sel), policy(ns, "narrowed", sel)
	for _, p := range []*livev1.RecordingPolicy{gone, paused, narrowed} {
		g.Expect(k8s.Create(ctx, p)).To(Succeed())
	}
	room := liveRoom(t, ns, "gold-room", livev1.OriginCallback, sel)
	for _, p := range []string{"gone", "paused", "narrowed"} {
		g.Eventually(func() error { _, err := getJob(ns, naming.JobName("gold-room", p)); return err }, wait).Should(Succeed())
	}
	g.Eventually(func() []livev1.RecordingStatus { return getRoom(t, room).Status.Recordings }, wait).Should(HaveLen(3), "two or more policies record one room")

	g.Expect(k8s.Delete(ctx, gone)).To(Succeed())
	g.Eventually(suspended(ns, naming.JobName("gold-room", "gone")), wait).Should(BeTrue(), "policy deleted")

	setSuspend(g, paused, true)
	g.Eventually(suspended(ns, naming.JobName("gold-room", "paused")), wait).Should(BeTrue(), "policy suspended")

	narrowPatch := client.MergeFrom(narrowed.DeepCopy())
	narrowed.Spec.RoomSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "platinum"}}
	g.Expect(k8s.Patch(ctx, narrowed, narrowPatch)).To(Succeed())
	g.Eventually(suspended(ns, naming.JobName("gold-room", "narrowed")), wait).Should(BeTrue(), "selector no longer matches")

	// Resuming the policy resumes its recording.
	setSuspend(g, paused, false)
	g.Eventually(suspended(ns, naming.JobName("gold-room", "paused")), wait).Should(BeFalse())
}

func setSuspend(g Gomega, p *livev1.RecordingPolicy, suspend bool) {
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Suspend = suspend
	g.Expect(k8s.Patch(context.Background(), p, patch)).To(Succeed())
}

func TestRoomOptOut(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, policy(ns, "record", nil))).To(Succeed())
	room := liveRoom(t, ns, "shy", livev1.OriginCallback, nil)
	name := naming.JobName("shy", "record")
	g.Eventually(func() error { _, err := getJob(ns, name); return err }, wait).Should(Succeed())

	cur := getRoom(t, room)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec.Recording.Disabled = true
	g.Expect(k8s.Patch(ctx, cur, patch)).To(Succeed())
	g.Eventually(suspended(ns, name), wait).Should(BeTrue())
	g.Eventually(func() string {
		c := meta.FindStatusCondition(getRoom(t, room).Status.Conditions, livev1.ConditionRecording)
		if c == nil {
			return ""
		}
		return c.Reason
	}, wait).Should(Equal("OptedOut"))

	// A room that opted out from the start never gets a Job.
	declared := &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: "never", Namespace: ns},
		Spec:       livev1.LiveRoomSpec{RoomID: "never", SDKAppID: 1, Recording: livev1.RecordingSpec{Disabled: true}},
	}
	g.Expect(k8s.Create(ctx, declared)).To(Succeed())
	statusPatch := client.MergeFrom(declared.DeepCopy())
	declared.Status.Phase = livev1.RoomPhaseLive
	g.Expect(k8s.Status().Patch(ctx, declared, statusPatch)).To(Succeed())
	g.Consistently(func() bool {
		_, err := getJob(ns, naming.JobName("never", "record"))
		return apierrors.IsNotFound(err)
	}, 2*time.Second).Should(BeTrue())
}

func TestEndedRoomTTL(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, policy(ns, "record", nil))).To(Succeed())
	callbackRoom := liveRoom(t, ns, "short-lived", livev1.OriginCallback, nil)
	resyncRoom := liveRoom(t, ns, "found-by-resync", livev1.OriginResync, nil)
	declaredRoom := liveRoom(t, ns, "declared", "", nil)
	g.Eventually(func() error { _, err := getJob(ns, naming.JobName("short-lived", "record")); return err }, wait).Should(Succeed())

	ended := time.Now()
	for _, r := range []*livev1.LiveRoom{callbackRoom, resyncRoom, declaredRoom} {
		endRoom(t, r, ended)
	}
	for _, r := range []*livev1.LiveRoom{callbackRoom, resyncRoom} {
		g.Eventually(func() bool {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(r), &livev1.LiveRoom{})
			return apierrors.IsNotFound(err)
		}, wait).Should(BeTrue(), "%s deleted after the TTL", r.Name)
	}
	// Deleted no earlier than the TTL.
	g.Expect(time.Since(ended)).To(BeNumerically(">=", testTTL-time.Second))
	g.Consistently(func() error {
		return k8s.Get(ctx, client.ObjectKeyFromObject(declaredRoom), &livev1.LiveRoom{})
	}, testTTL).Should(Succeed(), "declared rooms are never deleted by the operator")
}

func kstatusOf(t *testing.T, obj client.Object) status.Status {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

func TestHealthyRoomAndPolicyAreKstatusCurrent(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	p := policy(ns, "record", nil)
	g.Expect(k8s.Create(ctx, p)).To(Succeed())
	room := liveRoom(t, ns, "healthy", livev1.OriginCallback, nil)

	g.Eventually(func() status.Status { return kstatusOf(t, getRoom(t, room)) }, wait).Should(Equal(status.CurrentStatus))
	g.Eventually(func() status.Status {
		var cur livev1.RecordingPolicy
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &cur)).To(Succeed())
		return kstatusOf(t, &cur)
	}, wait).Should(Equal(status.CurrentStatus))
	g.Eventually(func() int32 {
		var cur livev1.RecordingPolicy
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &cur)).To(Succeed())
		return cur.Status.MatchedRooms*10 + cur.Status.ActiveRecordings
	}, wait).Should(BeEquivalentTo(11), "one matched room, one active recording")
}

func TestInvalidPolicyIsStalled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	bad := policy(ns, "bad-template", nil)
	bad.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	g.Expect(k8s.Create(ctx, bad)).To(Succeed())
	badSel := policy(ns, "bad-selector", nil)
	badSel.Spec.RoomSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}}
	g.Expect(k8s.Create(ctx, badSel)).To(Succeed())
	badImage := policy(ns, "bad-job", nil)
	badImage.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Name = "Not_A_DNS_Label"
	g.Expect(k8s.Create(ctx, badImage)).To(Succeed())
	liveRoom(t, ns, "any", livev1.OriginCallback, nil)

	for _, p := range []*livev1.RecordingPolicy{bad, badSel, badImage} {
		g.Eventually(func() status.Status {
			var cur livev1.RecordingPolicy
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &cur)).To(Succeed())
			return kstatusOf(t, &cur)
		}, wait).Should(Equal(status.FailedStatus), p.Name)
		var cur livev1.RecordingPolicy
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &cur)).To(Succeed())
		c := meta.FindStatusCondition(cur.Status.Conditions, livev1.ConditionStalled)
		g.Expect(c.Reason).To(Equal("InvalidSpec"))
		g.Expect(c.Message).NotTo(BeEmpty())
		g.Consistently(func() bool {
			_, err := getJob(ns, naming.JobName("any", p.Name))
			return apierrors.IsNotFound(err)
		}, time.Second).Should(BeTrue(), "no Job from an invalid policy")
	}
}
