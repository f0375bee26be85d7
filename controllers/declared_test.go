package controllers

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

func declaredRoom(ns, name, roomID string, policy livev1.DeletionPolicy) *livev1.LiveRoom {
	return &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: livev1.LiveRoomSpec{
			RoomID: roomID, SDKAppID: 1400000000, RoomName: "from git", Owner: "gitops", MaxMemberCount: 300,
			Seats: livev1.SeatSpec{Enabled: true, Mode: livev1.SeatModeApplyToTake, Max: 16}, Categories: []int64{1, 2},
			DeletionPolicy: policy,
		},
	}
}

func syncedReason(room *livev1.LiveRoom) func() string {
	return func() string {
		var cur livev1.LiveRoom
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(room), &cur); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, livev1.ConditionSynced)
		if c == nil || c.ObservedGeneration != cur.Generation {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

func gone(room *livev1.LiveRoom) func() bool {
	return func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(room), &livev1.LiveRoom{}))
	}
}

func TestDeclaredRoomCreatedUpdatedDestroyed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	room := declaredRoom(ns, "git-room", "git-room-1", "")
	g.Expect(k8s.Create(ctx, room)).To(Succeed())

	g.Eventually(syncedReason(room), wait).Should(Equal("True/Created"))
	info, ok := fakeTencent.Room("git-room-1")
	g.Expect(ok).To(BeTrue())
	g.Expect(*info.RoomName).To(Equal("from git"))
	g.Expect(string(info.OwnerAccount)).To(Equal("gitops"))
	g.Expect(info.TakeSeatMode).To(BeEquivalentTo(livev1.SeatModeApplyToTake))
	cur := getRoom(t, room)
	g.Expect(cur.Finalizers).To(ContainElement(livev1.RoomFinalizer))
	g.Expect(kstatusOf(t, cur)).To(Equal(status.CurrentStatus))
	g.Expect(cur.Status.Tencent).To(Equal(livev1.TencentRoomStatus{State: livev1.TencentRoomCreated, ObservedGeneration: cur.Generation}))

	// A spec change reaches Tencent.
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec.RoomName = "renamed in git"
	g.Expect(k8s.Patch(ctx, cur, patch)).To(Succeed())
	g.Eventually(syncedReason(room), wait).Should(Equal("True/Updated"))
	info, _ = fakeTencent.Room("git-room-1")
	g.Expect(*info.RoomName).To(Equal("renamed in git"))

	// Deleting it destroys the room in Tencent (deletionPolicy defaults to Destroy).
	g.Expect(k8s.Delete(ctx, cur)).To(Succeed())
	g.Eventually(gone(room), wait).Should(BeTrue())
	_, ok = fakeTencent.Room("git-room-1")
	g.Expect(ok).To(BeFalse())
}

func TestDeclaredRoomOrphanedAndAlreadyGone(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	orphan := declaredRoom(ns, "orphan", "orphan-1", livev1.DeletionPolicyOrphan)
	g.Expect(k8s.Create(ctx, orphan)).To(Succeed())
	g.Eventually(syncedReason(orphan), wait).Should(Equal("True/Created"))
	g.Expect(k8s.Delete(ctx, orphan)).To(Succeed())
	g.Eventually(gone(orphan), wait).Should(BeTrue())
	_, ok := fakeTencent.Room("orphan-1")
	g.Expect(ok).To(BeTrue(), "Orphan leaves the room in Tencent")

	// Destroyed in Tencent already (100004): deleting the object still completes.
	vanished := declaredRoom(ns, "vanished", "vanished-1", "")
	g.Expect(k8s.Create(ctx, vanished)).To(Succeed())
	g.Eventually(syncedReason(vanished), wait).Should(Equal("True/Created"))
	fakeTencent.RemoveRoom("vanished-1")
	g.Expect(k8s.Delete(ctx, vanished)).To(Succeed())
	g.Eventually(gone(vanished), wait).Should(BeTrue())
}

func TestDeclaredRoomExistingInTencent(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()

	// Same owner (100010): the room is usable as it is.
	fakeTencent.AddRoom(tencent.RoomInfo{RoomID: "mine-1", RoomType: "Live", OwnerAccount: "gitops"})
	mine := declaredRoom(ns, "mine", "mine-1", "")
	g.Expect(k8s.Create(ctx, mine)).To(Succeed())
	g.Eventually(syncedReason(mine), wait).Should(Equal("True/Created"))

	// Another owner (100003): Stalled, not retried, and never destroyed by us.
	fakeTencent.AddRoom(tencent.RoomInfo{RoomID: "theirs-1", RoomType: "Live", OwnerAccount: "someone-else"})
	theirs := declaredRoom(ns, "theirs", "theirs-1", "")
	g.Expect(k8s.Create(ctx, theirs)).To(Succeed())
	g.Eventually(syncedReason(theirs), wait).Should(Equal("False/RoomIDTaken"))
	cur := getRoom(t, theirs)
	g.Expect(kstatusOf(t, cur)).To(Equal(status.FailedStatus), "%+v gen %d obs %d", cur.Status.Conditions, cur.Generation, cur.Status.ObservedGeneration)
	g.Expect(meta.FindStatusCondition(cur.Status.Conditions, livev1.ConditionSynced).Message).To(ContainSubstring("100003"))
	g.Expect(cur.Status.Tencent.State).To(Equal(livev1.TencentRoomTaken))
	calls := fakeTencent.Calls(tencent.RESTCreateRoom)
	g.Consistently(func() int { return fakeTencent.Calls(tencent.RESTCreateRoom) }, 2*time.Second).Should(Equal(calls), "no retry loop")
	g.Expect(k8s.Delete(ctx, cur)).To(Succeed())
	g.Eventually(gone(theirs), wait).Should(BeTrue())
	_, ok := fakeTencent.Room("theirs-1")
	g.Expect(ok).To(BeTrue(), "another owner's room is never destroyed")
}

func TestDeclaredRoomRetriesTencentErrors(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	// More failures than the client retries: the controller reports and retries later.
	fakeTencent.FailNext(tencent.RESTCreateRoom, tencent.CodeInternal, 6)
	room := declaredRoom(ns, "flaky", "flaky-1", "")
	g.Expect(k8s.Create(ctx, room)).To(Succeed())
	g.Eventually(func() string {
		c := meta.FindStatusCondition(getRoom(t, room).Status.Conditions, livev1.ConditionSynced)
		if c == nil {
			return ""
		}
		return c.Reason + " " + c.Message
	}, wait).Should(And(HavePrefix("CreateFailed"), ContainSubstring("100001")))
	g.Eventually(syncedReason(room), wait).Should(Equal("True/Created"))
}

func TestDeclaredRoomWithoutTencentAPIIsStalled(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	room := declaredRoom("any", "no-api", "no-api-1", "")
	r := &LiveRoomReconciler{Recorder: &events.FakeRecorder{}}
	res := r.syncDeclared(ctx, room)
	g.Expect(res.err).NotTo(HaveOccurred())
	g.Expect(res.stalled).NotTo(BeNil())
	g.Expect(res.stalled.reason).To(Equal(reasonNoAPI))
	g.Expect(res.synced.status).To(BeFalse())
	g.Expect(room.Finalizers).To(BeEmpty(), "no finalizer that nothing could ever remove")
}

// TestDeclaredRoomWithTencentUnreachable keeps the admin UserSig, which the REST API
// carries in the query string, out of conditions and Events when Tencent cannot be
// reached. The suite's manager talks to the fake Tencent and would sync the room, so
// this test runs its own control plane and manager, with the client main.go builds.
func TestDeclaredRoomWithTencentUnreachable(t *testing.T) {
	g := NewWithT(t)
	env, cfg, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())

	const appID, admin, key = 1400000000, "administrator", "unreachable-secret-key"
	tc, err := tencent.NewClient(tencent.Config{BaseURL: "http://" + closedAddress(t), SDKAppID: appID, AdminUser: admin,
		SecretKey: func() (string, error) { return key, nil }})
	g.Expect(err).NotTo(HaveOccurred())
	mgr, err := ctrl.NewManager(cfg, manager.Options{Scheme: testScheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:      caches.Controller(),                               // as in production
		Controller: config.Controller{SkipNameValidation: new(true)}}) // the suite has a "liveroom" controller too
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect((&LiveRoomReconciler{Client: mgr.GetClient(), Scheme: testScheme, Recorder: mgr.GetEventRecorder(FieldOwner),
		Apps: staticApps{apps.App{SDKAppID: appID, EndedRoomTTL: testTTL, Tencent: tc}}}).SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = mgr.Start(ctx)
	}()
	t.Cleanup(func() { cancel(); <-stopped }) // before the control plane stops

	began := time.Now()
	ns := "unreachable"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	room := declaredRoom(ns, "far-away", "far-away-1", "")
	g.Expect(c.Create(ctx, room)).To(Succeed())

	texts := func() []string {
		var cur livev1.LiveRoom
		var list eventsv1.EventList
		if c.Get(ctx, client.ObjectKeyFromObject(room), &cur) != nil || c.List(ctx, &list, client.InNamespace(ns)) != nil {
			return nil
		}
		var out []string
		for _, cond := range cur.Status.Conditions {
			out = append(out, cond.Type+"/"+string(cond.Status)+"/"+cond.Reason+": "+cond.Message)
		}
		for _, e := range list.Items {
			out = append(out, "event "+e.Reason+": "+e.Note)
		}
		return out
	}
	g.Eventually(texts, wait).Should(ContainElements(
		And(HavePrefix("Synced/False/CreateFailed: "), ContainSubstring("connection refused")),
		And(HavePrefix("event SyncFailed: "), ContainSubstring("connection refused"))))

	// Deleting it tries destroy_room, which fails the same way.
	g.Expect(c.Delete(ctx, room)).To(Succeed())
	g.Eventually(texts, wait).Should(ContainElement(And(HavePrefix("event DestroyFailed: "), ContainSubstring("connection refused"))))

	// Any UserSig the client can have signed during the test, one per second.
	var sigs []string
	for at := began.Truncate(time.Second); !at.After(time.Now()); at = at.Add(time.Second) {
		sig, err := tencent.GenUserSig(appID, key, admin, 24*time.Hour, at)
		g.Expect(err).NotTo(HaveOccurred())
		sigs = append(sigs, sig, sig[:20])
	}
	for _, text := range texts() {
		t.Log(text)
		g.Expect(strings.ToLower(text)).NotTo(Or(ContainSubstring("usersig"), ContainSubstring("identifier="), ContainSubstring("sdkappid=")))
		for _, sig := range sigs {
			g.Expect(text).NotTo(ContainSubstring(sig))
		}
	}
}

// closedAddress is a local address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A create whose answer never came may still have made the room: deleting the object
// destroys it if Tencent reports it with the spec's owner, and never another owner's.
func TestDeclaredRoomNeverConfirmedDestroyedOnlyWhenOurs(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	// Every create fails from the controller's side, for longer than the test.
	fakeTencent.FailNext(tencent.RESTCreateRoom, tencent.CodeInternal, 1000)
	t.Cleanup(func() { fakeTencent.FailNext(tencent.RESTCreateRoom, 0, 0) })

	ours := declaredRoom(ns, "lost-answer", "lost-answer-1", "")
	theirs := declaredRoom(ns, "unconfirmed-theirs", "unconfirmed-theirs-1", "")
	for _, room := range []*livev1.LiveRoom{ours, theirs} {
		g.Expect(k8s.Create(ctx, room)).To(Succeed())
		g.Eventually(syncedReason(room), wait).Should(Equal("False/CreateFailed"))
	}
	// Tencent had made the first room after all; the second RoomId is someone else's.
	fakeTencent.AddRoom(tencent.RoomInfo{RoomID: "lost-answer-1", RoomType: "Live", OwnerAccount: "gitops"})
	fakeTencent.AddRoom(tencent.RoomInfo{RoomID: "unconfirmed-theirs-1", RoomType: "Live", OwnerAccount: "someone-else"})

	for _, room := range []*livev1.LiveRoom{ours, theirs} {
		g.Expect(k8s.Delete(ctx, getRoom(t, room))).To(Succeed())
		g.Eventually(gone(room), wait).Should(BeTrue())
	}
	_, ok := fakeTencent.Room("lost-answer-1")
	g.Expect(ok).To(BeFalse(), "the operator's own room is destroyed")
	_, ok = fakeTencent.Room("unconfirmed-theirs-1")
	g.Expect(ok).To(BeTrue(), "another owner's room is left alone")
}
