package webhookserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

func createBody(roomID, owner string, createTime int64) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":%q,"RoomName":%q,"RoomType":"Live","Owner_Account":%q,"MaxMemberCount":300,"IsMessageDisabled":true,"CustomInfo":"custom123","IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":%d,"IsPublicVisible":true,"CoverURL":"cover url","Category":[1,2]}}`,
		roomID, roomID, owner, createTime)
}

func destroyBody(roomID string, eventMillis int64) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDestroyRoom","Operator_Account":"admin","RoomId":%q,"EventType":"DestroyByUser","EventTime":%d,"RoomInfo":{"RoomName":"live name","Owner_Account":144115216631667826},"Statistic":{"TotalViewers":42,"TotalGiftsSent":1,"TotalGiftCoins":2,"TotalUniqueGiftSenders":3,"TotalLikesReceived":4}}`, roomID, eventMillis)
}

func updateBody(roomID, name string, eventMillis int64) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterUpdateRoomInfo","Operator_Account":"bob","RoomInfo":{"RoomId":%q,"RoomName":%q,"MaxMemberCount":500,"Category":[3]},"EventTime":%d}`, roomID, name, eventMillis)
}

func memberBody(roomID, eventType string, members []string, eventMillis int64) string {
	list := make([]string, len(members))
	for i, m := range members {
		list[i] = fmt.Sprintf(`{"Member_Account":%q}`, m)
	}
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":%q,"EventType":%q,"EventCause":"Enter","MemberList":[%s],"EventTime":%d}`,
		roomID, eventType, strings.Join(list, ","), eventMillis)
}

func expectOK(t *testing.T, r reply) {
	t.Helper()
	if r.status != http.StatusOK || r.ActionStatus != "OK" || r.ErrorCode != 0 {
		t.Fatalf("want OK, got %d %+v", r.status, r.answer)
	}
}

func nowMillis() int64 { return time.Now().UnixMilli() }

func TestCreateCallbackCreatesLiveRoom(t *testing.T) {
	g := NewWithT(t)
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("tandy-test-rest", "user3", 1703589922)}))

	room := getRoom(t, "tandy-test-rest")
	g.Expect(room.Spec.RoomID).To(Equal("tandy-test-rest"))
	g.Expect(room.Spec.SDKAppID).To(BeEquivalentTo(testAppID))
	g.Expect(room.Spec.Owner).To(Equal("user3"))
	g.Expect(room.Spec.MaxMemberCount).To(BeEquivalentTo(300))
	g.Expect(room.Spec.Seats).To(Equal(livev1.SeatSpec{Enabled: true, Mode: livev1.SeatModeApplyToTake, Max: 16}))
	g.Expect(room.Spec.Categories).To(Equal([]int64{1, 2}))
	g.Expect(room.Spec.DeletionPolicy).To(Equal(livev1.DeletionPolicyDestroy), "defaulted by the CRD")
	g.Expect(room.Annotations).To(HaveKeyWithValue(livev1.OriginAnnotation, livev1.OriginCallback))
	g.Expect(room.Labels).To(HaveKeyWithValue(livev1.OwnerLabel, "user3"))
	g.Expect(room.Labels).To(HaveKeyWithValue(livev1.RoomTypeLabel, "Live"))
	g.Expect(room.Labels).To(HaveKeyWithValue(livev1.CategoryLabelPrefix+"1", "true"))
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseLive))
	g.Expect(room.Status.CreateTime.Unix()).To(BeEquivalentTo(1703589922))
	for _, mf := range room.ManagedFields {
		g.Expect(mf.Manager).To(Equal(FieldOwner))
		g.Expect(mf.Operation).To(Equal(metav1.ManagedFieldsOperationApply))
	}

	// An Event tells people the callback created the room.
	g.Eventually(func() []string {
		var list eventsv1.EventList
		_ = k8s.List(context.Background(), &list, client.InNamespace(testNamespace))
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Name == "tandy-test-rest" {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}, 10*time.Second).Should(ContainElement("RoomCreated"))
}

func TestRoomIDThatIsNotADNSLabel(t *testing.T) {
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("Room_ABC.01", "user1", time.Now().Unix())}))
	name := naming.RoomObjectName("Room_ABC.01")
	if !strings.HasPrefix(name, "room-abc-01-") {
		t.Fatalf("unexpected name %q", name)
	}
	room := getRoom(t, name)
	if room.Spec.RoomID != "Room_ABC.01" || room.Status.Phase != livev1.RoomPhaseLive {
		t.Fatalf("room %+v", room)
	}
	// Later events find the room by RoomId.
	expectOK(t, send(t, callback{command: tencent.CommandDestroyRoom, body: destroyBody("Room_ABC.01", nowMillis())}))
	if got := getRoom(t, name).Status.Phase; got != livev1.RoomPhaseEnded {
		t.Fatalf("phase %s", got)
	}
}

func TestDestroyEndsRoomWithStatistics(t *testing.T) {
	g := NewWithT(t)
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("to-destroy", "u", time.Now().Unix()-10)}))
	end := nowMillis()
	expectOK(t, send(t, callback{command: tencent.CommandDestroyRoom, body: destroyBody("to-destroy", end)}))
	room := getRoom(t, "to-destroy")
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseEnded))
	g.Expect(room.Status.EndReason).To(Equal(livev1.EndReasonDestroyByUser))
	g.Expect(room.Status.EndTime.Unix()).To(Equal(end / 1000))
	g.Expect(room.Status.Statistics).To(Equal(&livev1.RoomStatistics{TotalViewers: 42, TotalGiftsSent: 1, TotalGiftCoins: 2, TotalUniqueGiftSenders: 3, TotalLikesReceived: 4}))
	g.Expect(room.Status.LastEventTime.UnixMilli()).To(Equal(end))
}

func TestDestroyBeforeCreate(t *testing.T) {
	g := NewWithT(t)
	created := time.Now().Unix() - 60
	expectOK(t, send(t, callback{command: tencent.CommandDestroyRoom, body: destroyBody("early-destroy", nowMillis())}))
	room := getRoom(t, "early-destroy")
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseEnded))

	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("early-destroy", "late-owner", created)}))
	room = getRoom(t, "early-destroy")
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseEnded), "a late create must not revive the room")
	g.Expect(room.Spec.Owner).To(Equal("144115216631667826"), "the destroy's owner is newer than the create's")
	g.Expect(room.Spec.MaxMemberCount).To(BeEquivalentTo(300), "the late create completes what the destroy did not tell")
	g.Expect(room.Spec.RoomName).To(Equal("live name"), "but does not undo the destroy's newer settings")
}

func TestOutOfOrderUpdates(t *testing.T) {
	g := NewWithT(t)
	base := time.Now().Unix() - 100
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("ordered", "u", base)}))
	expectOK(t, send(t, callback{command: tencent.CommandUpdateRoomInfo, body: updateBody("ordered", "newest", base*1000+5000)}))
	expectOK(t, send(t, callback{command: tencent.CommandUpdateRoomInfo, body: updateBody("ordered", "older", base*1000+3000)}))
	room := getRoom(t, "ordered")
	g.Expect(room.Spec.RoomName).To(Equal("newest"))
	g.Expect(room.Spec.MaxMemberCount).To(BeEquivalentTo(500))
	g.Expect(room.Spec.Categories).To(Equal([]int64{3}))
	g.Expect(room.Labels).To(HaveKey(livev1.CategoryLabelPrefix + "3"))
	g.Expect(room.Labels).NotTo(HaveKey(livev1.CategoryLabelPrefix+"1"), "labels follow the categories")
	g.Expect(room.Status.LastEventTime.UnixMilli()).To(Equal(base*1000 + 5000))
}

func TestSeatsOwnerAdmins(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Now().Unix() - 100
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("seated", "owner1", t0)}))
	seats := fmt.Sprintf(`{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"seated","SeatList":[{"Index":0,"Member_Account":"owner1"},{"Index":1,"Member_Account":144115233775727695,"IsAudioDisabled":true},{"Index":2,"IsTakenDisabled":true}],"EventTime":%d}`, t0*1000+1000)
	expectOK(t, send(t, callback{command: tencent.CommandSeatInfoChanged, body: seats}))
	owner := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterChangeOwner","RoomId":"seated","EventTime":%d,"Operator_Account":"admin","CurrentOwner_Account":"owner2","OriginalOwner_Account":"owner1"}`, t0*1000+2000)
	expectOK(t, send(t, callback{command: tencent.CommandChangeOwner, body: owner}))
	admins := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"seated","EventTime":%d,"Operator_Account":"admin","Admin_Account":["user1","user2"],"opType":"add"}`, t0*1000+3000)
	expectOK(t, send(t, callback{command: tencent.CommandModifyAdmin, body: admins}))
	removed := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterModifyAdmin","RoomId":"seated","EventTime":%d,"Admin_Account":["user1"],"opType":"delete"}`, t0*1000+4000)
	expectOK(t, send(t, callback{command: tencent.CommandModifyAdmin, body: removed}))

	room := getRoom(t, "seated")
	g.Expect(room.Status.OccupiedSeats).To(BeEquivalentTo(2))
	g.Expect(room.Status.Seats).To(HaveLen(3))
	g.Expect(room.Status.Seats[1]).To(Equal(livev1.SeatStatus{Index: 1, Member: "144115233775727695", AudioDisabled: true}))
	g.Expect(room.Status.Seats[2]).To(Equal(livev1.SeatStatus{Index: 2, Locked: true}))
	g.Expect(room.Status.Owner).To(Equal("owner2"))
	g.Expect(room.Spec.Owner).To(Equal("owner2"))
	g.Expect(room.Labels).To(HaveKeyWithValue(livev1.OwnerLabel, "owner2"))
	g.Expect(room.Status.Admins).To(Equal([]string{"user2"}))
}

func TestMemberEventsCoalescedAndCountedOnce(t *testing.T) {
	g := NewWithT(t)
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("busy", "u", time.Now().Unix())}))
	before := writes.writesTo("busy")

	// 60 callbacks of 2 members each, all at once: each answered once the count lane has
	// it, without waiting for a write, and written in a handful of writes rather than 60.
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 60 {
		wg.Go(func() {
			r := send(t, callback{command: "Live.CallbackMemberStateChanged",
				body: memberBody("busy", "Online", []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)}, nowMillis())})
			expectOK(t, r)
		})
	}
	wg.Wait()
	g.Eventually(func() int64 { return getRoom(t, "busy").Status.Audience.Online }, 10*time.Second, 20*time.Millisecond).
		Should(BeEquivalentTo(120), "every acknowledged change is stored")
	elapsed := time.Since(start)
	g.Expect(getRoom(t, "busy").Status.Audience.Peak).To(BeEquivalentTo(120))
	// At most one write per room per interval.
	g.Expect(writes.writesTo("busy") - before).To(BeNumerically("<=", 1+int(elapsed/countInterval)))

	// A replayed delivery (same Sign, RequestTime and body) is acknowledged, not counted.
	rt := time.Now().Unix()
	leave := memberBody("busy", "Offline", []string{"a1"}, nowMillis())
	expectOK(t, send(t, callback{command: tencent.CommandMemberStateChanged, body: leave, requestTime: rt}))
	dupsBefore := testutil.ToFloat64(metrics.Duplicates.WithLabelValues(suiteLabel))
	expectOK(t, send(t, callback{command: tencent.CommandMemberStateChanged, body: leave, requestTime: rt}))
	g.Expect(testutil.ToFloat64(metrics.Duplicates.WithLabelValues(suiteLabel)) - dupsBefore).To(BeEquivalentTo(1))
	g.Eventually(func() int64 { return getRoom(t, "busy").Status.Audience.Online }, 10*time.Second, 20*time.Millisecond).Should(BeEquivalentTo(119))
	g.Consistently(func() int64 { return getRoom(t, "busy").Status.Audience.Online }, 3*countInterval, 50*time.Millisecond).Should(BeEquivalentTo(119))
}

func TestDistinctCallbacksInOneSecondAllApplied(t *testing.T) {
	// Sign only depends on the token and the second: 20 different rooms created in the
	// same second share it, and every one must be applied.
	rt := time.Now().Unix()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("same-second-%d", i), "u", rt), requestTime: rt}))
		}()
	}
	wg.Wait()
	for i := range 20 {
		if room := getRoom(t, fmt.Sprintf("same-second-%d", i)); room.Status.Phase != livev1.RoomPhaseLive {
			t.Errorf("room %d not live", i)
		}
	}
}

func TestConcurrentDuplicateCreates(t *testing.T) {
	body := createBody("dup-create", "u", time.Now().Unix())
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half replay one delivery, half are fresh deliveries of the same event.
			c := callback{command: tencent.CommandCreateRoom, body: body}
			if i%2 == 0 {
				c.requestTime = time.Now().Unix() - int64(i%7)
			}
			expectOK(t, send(t, c))
		}()
	}
	wg.Wait()
	var list livev1.LiveRoomList
	if err := k8s.List(context.Background(), &list, client.InNamespace(testNamespace), client.MatchingFields{"spec.roomId": "dup-create"}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Status.Phase != livev1.RoomPhaseLive {
		t.Fatalf("want one live room, got %d", len(list.Items))
	}
}

func TestRejections(t *testing.T) {
	create := createBody("never-stored", "u", time.Now().Unix())
	cases := []struct {
		name   string
		c      callback
		status int
		reason string
	}{
		{"unknown app", callback{command: tencent.CommandCreateRoom, body: create, sdkAppID: "1400000001"}, http.StatusForbidden, reasonWrongApp},
		{"SdkAppid not a number", callback{command: tencent.CommandCreateRoom, body: create, sdkAppID: "14e8"}, http.StatusForbidden, reasonWrongApp},
		{"bad sign", callback{command: tencent.CommandCreateRoom, body: create, token: "not-the-token"}, http.StatusUnauthorized, reasonBadSign},
		{"unsigned", callback{command: tencent.CommandCreateRoom, body: create, unsigned: true}, http.StatusUnauthorized, reasonMissing},
		{"stale time", callback{command: tencent.CommandCreateRoom, body: create, requestTime: time.Now().Add(-2 * time.Minute).Unix()}, http.StatusUnauthorized, reasonStale},
		{"future time", callback{command: tencent.CommandCreateRoom, body: create, requestTime: time.Now().Add(2 * time.Minute).Unix()}, http.StatusUnauthorized, reasonStale},
		{"GET", callback{command: tencent.CommandCreateRoom, body: create, method: http.MethodGet}, http.StatusMethodNotAllowed, reasonMethod},
		{"oversized", callback{command: tencent.CommandCreateRoom, body: `{"CallbackCommand":"Live.CallbackAfterCreateRoom","Pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`}, http.StatusRequestEntityTooLarge, reasonTooLarge},
		{"not JSON", callback{command: tencent.CommandCreateRoom, body: "RoomId=never-stored"}, http.StatusBadRequest, tencent.ReasonNotJSON},
		{"command mismatch", callback{command: tencent.CommandDestroyRoom, body: create}, http.StatusBadRequest, tencent.ReasonCommandMismatch},
		{"RoomId too long", callback{command: tencent.CommandDestroyRoom, body: destroyBody(strings.Repeat("r", 49), nowMillis())}, http.StatusBadRequest, tencent.ReasonInvalidRoom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := suiteLabel
			if c.status == http.StatusForbidden {
				app = unknownApp
			}
			before := testutil.ToFloat64(metrics.Rejections.WithLabelValues(app, c.reason))
			r := send(t, c.c)
			if r.status != c.status || r.ActionStatus != "FAIL" || r.ErrorInfo == "" {
				t.Fatalf("got %d %+v, want %d FAIL with a reason", r.status, r.answer, c.status)
			}
			if got := testutil.ToFloat64(metrics.Rejections.WithLabelValues(app, c.reason)) - before; got != 1 {
				t.Errorf("rejections{app=%q,reason=%q} grew by %v", app, c.reason, got)
			}
		})
	}
	var room livev1.LiveRoom
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: "never-stored"}, &room)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("a rejected callback was stored: %v", err)
	}
}

func TestUnknownCommandAnsweredOKAndCounted(t *testing.T) {
	before := testutil.ToFloat64(metrics.Events.WithLabelValues(suiteLabel, "other", string(outcomeIgnored)))
	expectOK(t, send(t, callback{command: "Live.CallbackAfterCreateBattle", body: `{"CallbackCommand":"Live.CallbackAfterCreateBattle","BattleId":"b1","FromRoomId":"x"}`}))
	if got := testutil.ToFloat64(metrics.Events.WithLabelValues(suiteLabel, "other", string(outcomeIgnored))) - before; got != 1 {
		t.Fatalf("ignored events grew by %v", got)
	}
}

func TestNeverTakesFieldsOwnedByOthers(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Now().Unix() - 100
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("shared", "u", t0)}))
	// A person takes spec.roomName and sets the deletion policy.
	patch := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": livev1.GroupVersion.String(), "kind": "LiveRoom",
		"metadata": map[string]any{"name": "shared", "namespace": testNamespace},
		"spec":     map[string]any{"roomName": "chosen by a person", "deletionPolicy": "Orphan"},
	}}
	g.Expect(k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(patch), client.FieldOwner("person"), client.ForceOwnership)).To(Succeed())

	expectOK(t, send(t, callback{command: tencent.CommandUpdateRoomInfo, body: updateBody("shared", "from tencent", t0*1000+5000)}))
	room := getRoom(t, "shared")
	g.Expect(room.Spec.RoomName).To(Equal("chosen by a person"))
	g.Expect(room.Spec.DeletionPolicy).To(Equal(livev1.DeletionPolicyOrphan))
	g.Expect(room.Spec.MaxMemberCount).To(BeEquivalentTo(500), "fields nobody else owns still follow Tencent")
}

func TestDeclaredRoomSpecNeverChangedByCallbacks(t *testing.T) {
	g := NewWithT(t)
	declared := &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: "my-declared-room", Namespace: testNamespace},
		Spec:       livev1.LiveRoomSpec{RoomID: "declared-1", SDKAppID: testAppID, RoomName: "from git", Owner: "gitops"},
	}
	g.Expect(k8s.Create(context.Background(), declared)).To(Succeed())
	// The callback server must find it by RoomId in its cache; give the cache a moment.
	g.Eventually(func() error {
		var list livev1.LiveRoomList
		return srvCacheHas(&list, "declared-1")
	}, 5*time.Second).Should(Succeed())

	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("declared-1", "tencent-owner", time.Now().Unix())}))
	room := getRoom(t, "my-declared-room")
	g.Expect(room.Spec.RoomName).To(Equal("from git"))
	g.Expect(room.Spec.Owner).To(Equal("gitops"))
	g.Expect(room.Annotations).NotTo(HaveKey(livev1.OriginAnnotation))
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseLive))
	g.Expect(room.Status.Owner).To(Equal("tencent-owner"))
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: "declared-1"}, &livev1.LiveRoom{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no second LiveRoom for the same RoomId")
}

func srvCacheHas(list *livev1.LiveRoomList, roomID string) error {
	if err := writes.List(context.Background(), list, client.InNamespace(testNamespace), client.MatchingFields{"spec.roomId": roomID}); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		return fmt.Errorf("not cached yet")
	}
	return nil
}

func TestAPIServerUnreachableNothingAcknowledged(t *testing.T) {
	g := NewWithT(t)
	dead := *cfg
	dead.Host = "https://127.0.0.1:1"
	dead.Timeout = time.Second
	c, err := client.New(&dead, client.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())
	s := serverOn(t, Options{Timeout: 500 * time.Millisecond}, c, c)
	url := startHandler(t, s)

	// Audience counts are soft state: acknowledged once the count lane has them, written
	// when the API server is back.
	expectOK(t, send(t, callback{command: tencent.CommandMemberStateChanged, body: memberBody("unreachable", "Online", []string{"m"}, nowMillis()), url: url}))
	for _, cmd := range []string{tencent.CommandCreateRoom} {
		body := createBody("unreachable", "u", time.Now().Unix())
		start := time.Now()
		r := send(t, callback{command: cmd, body: body, url: url})
		g.Expect(r.status).To(Equal(http.StatusServiceUnavailable))
		g.Expect(r.ActionStatus).To(Equal("FAIL"))
		g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second), "answered before Tencent gives up")
	}
}

func TestAPIServerTooSlowAnswers503(t *testing.T) {
	g := NewWithT(t)
	slow := &slowClient{Client: writes}
	s := serverOn(t, Options{Timeout: 300 * time.Millisecond}, slow, writes)
	url := startHandler(t, s)
	r := send(t, callback{command: tencent.CommandCreateRoom, body: createBody("slow-write", "u", time.Now().Unix()), url: url})
	g.Expect(r.status).To(Equal(http.StatusServiceUnavailable))
	// Once the API server answers in time, the same delivery is applied: a failed
	// delivery is not remembered as a replay.
	slow.fast = true
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("slow-write", "u", time.Now().Unix()), url: url}))
}

// slowClient makes writes wait until their context ends, unless fast is set.
type slowClient struct {
	client.Client
	fast bool
}

func (s *slowClient) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	if !s.fast {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Client.Apply(ctx, ac, opts...)
}

func startHandler(t *testing.T, s *Server) string {
	t.Helper()
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs.URL + "/callback"
}

func TestNameHeldByAnotherRoomIDIsNeverOverwritten(t *testing.T) {
	g := NewWithT(t)
	names := naming.RoomObjectNames("Clash_Room")
	// Someone declared a room whose name is Clash_Room's derived name, for another RoomId.
	squatter := &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: names[0], Namespace: testNamespace},
		Spec:       livev1.LiveRoomSpec{RoomID: "someone-else", SDKAppID: testAppID},
	}
	g.Expect(k8s.Create(context.Background(), squatter)).To(Succeed())
	// Even before the server's cache has seen it, the create must not take it over.
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("Clash_Room", "u", time.Now().Unix())}))

	g.Expect(getRoom(t, names[0]).Spec.RoomID).To(Equal("someone-else"))
	room := getRoom(t, names[1])
	g.Expect(room.Spec.RoomID).To(Equal("Clash_Room"))
	g.Expect(room.Status.Phase).To(Equal(livev1.RoomPhaseLive))
}
