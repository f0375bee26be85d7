package webhookserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// newApp creates, as a person would, a LiveApp serving namespace (created if need be)
// for sdkAppID, and, as the controller would, its projection with tokens (one per line;
// "": none). Both are deleted when the test ends.
func newApp(t *testing.T, namespace string, sdkAppID int64, tokens string, mods ...func(*livev1.LiveApp)) *livev1.LiveApp {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	app := &livev1.LiveApp{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: namespace}, Spec: livev1.LiveAppSpec{SDKAppID: sdkAppID}}
	for _, m := range mods {
		m(app)
	}
	if err := k8s.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	if tokens != "" {
		if err := writeProjection(ctx, app, tokens); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		proj := projectionOf(app, "")
		_ = k8s.Delete(ctx, &proj)
		_ = k8s.Delete(ctx, app)
	})
	return app
}

// labelOf is an app's metrics label.
func labelOf(app *livev1.LiveApp) string { return app.Namespace + "/" + app.Name }

// servedTokens is the TokensHash of what the suite server accepts for sdkAppID if app
// serves it, "" otherwise.
func servedTokens(app *livev1.LiveApp) func() string {
	return func() string {
		served := srv.apps.lookup(strconv.FormatInt(app.Spec.SDKAppID, 10))
		if served == nil || served.key != client.ObjectKeyFromObject(app) {
			return ""
		}
		return served.tokens.Hash()
	}
}

// waitServed waits until the suite server serves app with tokens.
func waitServed(t *testing.T, app *livev1.LiveApp, tokens ...string) {
	t.Helper()
	NewWithT(t).Eventually(servedTokens(app), 10*time.Second, 20*time.Millisecond).Should(Equal(apps.TokensHash(tokens)))
}

// sendTo sends c to app, signed with token.
func sendTo(t *testing.T, app *livev1.LiveApp, token string, c callback) reply {
	t.Helper()
	c.sdkAppID, c.token = strconv.FormatInt(app.Spec.SDKAppID, 10), token
	return send(t, c)
}

func roomIn(t *testing.T, namespace, name string) *livev1.LiveRoom {
	t.Helper()
	var room livev1.LiveRoom
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &room); err != nil {
		t.Fatalf("getting LiveRoom %s/%s: %v", namespace, name, err)
	}
	return &room
}

// suiteLease is what the suite replica's Lease says it has loaded.
func suiteLease(g Gomega) map[string]string {
	var lease coordinationv1.Lease
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: suiteReplica}, &lease)).To(Succeed())
	return apps.LoadedTokens(&lease)
}

// Two apps in two namespaces: each app's callbacks land in its namespace with its
// SDKAppID, and one app's token is refused for the other.
func TestTwoAppsInTwoNamespaces(t *testing.T) {
	g := NewWithT(t)
	a := newApp(t, "shop-a", 1400000101, "token-a")
	b := newApp(t, "shop-b", 1400000102, "token-b")
	waitServed(t, a, "token-a")
	waitServed(t, b, "token-b")

	created := time.Now().Unix()
	expectOK(t, sendTo(t, a, "token-a", callback{command: tencent.CommandCreateRoom, body: createBody("same-room", "owner-a", created)}))
	expectOK(t, sendTo(t, b, "token-b", callback{command: tencent.CommandCreateRoom, body: createBody("same-room", "owner-b", created)}))
	roomA, roomB := roomIn(t, "shop-a", "same-room"), roomIn(t, "shop-b", "same-room")
	g.Expect(roomA.Spec.SDKAppID).To(BeEquivalentTo(1400000101))
	g.Expect(roomA.Spec.Owner).To(Equal("owner-a"))
	g.Expect(roomB.Spec.SDKAppID).To(BeEquivalentTo(1400000102))
	g.Expect(roomB.Spec.Owner).To(Equal("owner-b"))

	for _, c := range []struct {
		app   *livev1.LiveApp
		token string
	}{{a, "token-b"}, {b, "token-a"}, {a, firstToken}} {
		r := sendTo(t, c.app, c.token, callback{command: tencent.CommandDestroyRoom, body: destroyBody("same-room", nowMillis())})
		g.Expect(r.status).To(Equal(http.StatusUnauthorized), "%s's token for %s", c.token, c.app.Namespace)
	}
	g.Expect(roomIn(t, "shop-a", "same-room").Status.Phase).To(Equal(livev1.RoomPhaseLive))

	// Audience counts go to each app's room, through each app's store.
	expectOK(t, sendTo(t, a, "token-a", callback{command: tencent.CommandMemberStateChanged, body: memberBody("same-room", "Online", []string{"m1", "m2"}, nowMillis())}))
	expectOK(t, sendTo(t, b, "token-b", callback{command: tencent.CommandMemberStateChanged, body: memberBody("same-room", "Online", []string{"m1", "m2", "m3"}, nowMillis())}))
	g.Eventually(func() []int64 {
		return []int64{roomIn(t, "shop-a", "same-room").Status.Audience.Online, roomIn(t, "shop-b", "same-room").Status.Audience.Online}
	}, 10*time.Second, 50*time.Millisecond).Should(Equal([]int64{2, 3}))
	// A room first heard of through a member callback belongs to its app too.
	expectOK(t, sendTo(t, b, "token-b", callback{command: tencent.CommandMemberStateChanged, body: memberBody("heard-of-late", "Online", []string{"m"}, nowMillis())}))
	g.Eventually(func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: "shop-b", Name: "heard-of-late"}, &livev1.LiveRoom{})
	}, 10*time.Second).Should(Succeed())
	g.Expect(roomIn(t, "shop-b", "heard-of-late").Spec.SDKAppID).To(BeEquivalentTo(1400000102))
}

// An SDKAppID claimed by two LiveApps is served by the older; when it goes, the other
// takes over.
func TestSDKAppIDClaimedTwiceOlderServes(t *testing.T) {
	g := NewWithT(t)
	older := newApp(t, "claim-z", 1400000201, "older-token")
	// Creation times are to the second, and a tie goes to the namespace first in order
	// ("claim-a"): the younger is created a second later, so only age decides.
	g.Eventually(func() int64 { return time.Now().Unix() }, 3*time.Second, 20*time.Millisecond).Should(BeNumerically(">", older.CreationTimestamp.Unix()))
	younger := newApp(t, "claim-a", 1400000201, "younger-token")
	waitServed(t, older, "older-token")
	g.Consistently(servedTokens(older), time.Second, 50*time.Millisecond).Should(Equal(apps.TokensHash([]string{"older-token"})), "the younger claimant takes nothing away")

	expectOK(t, sendTo(t, older, "older-token", callback{command: tencent.CommandCreateRoom, body: createBody("claimed", "u", time.Now().Unix())}))
	g.Expect(roomIn(t, "claim-z", "claimed").Spec.SDKAppID).To(BeEquivalentTo(1400000201))
	g.Expect(sendTo(t, younger, "younger-token", callback{command: tencent.CommandCreateRoom, body: createBody("claimed-2", "u", time.Now().Unix())}).status).
		To(Equal(http.StatusUnauthorized))

	g.Expect(k8s.Delete(context.Background(), older)).To(Succeed())
	waitServed(t, younger, "younger-token")
	expectOK(t, sendTo(t, younger, "younger-token", callback{command: tencent.CommandCreateRoom, body: createBody("claimed-3", "u", time.Now().Unix())}))
	g.Expect(roomIn(t, "claim-a", "claimed-3").Spec.SDKAppID).To(BeEquivalentTo(1400000201))
}

// A token rotation as the controller makes it: the projection holds the old token, then
// the old and the new, then the new. While both are projected, callbacks signed with
// either are accepted, and the replica's Lease reports each set within moments, so the
// controller can switch Tencent without waiting for a renewal.
func TestTokenRotationAsTheControllerDoesIt(t *testing.T) {
	g := NewWithT(t)
	app := newApp(t, "rotating", 1400000301, "old-token")
	waitServed(t, app, "old-token")
	uid := string(app.UID)
	g.Eventually(suiteLease).Should(HaveKeyWithValue(uid, apps.TokensHash([]string{"old-token"})))
	body := func(i int) string { return createBody(fmt.Sprintf("rotation-%d", i), "u", time.Now().Unix()) }

	start := time.Now()
	g.Expect(writeProjection(context.Background(), app, "old-token\nnew-token")).To(Succeed())
	g.Eventually(suiteLease, 2*time.Second, 10*time.Millisecond).Should(HaveKeyWithValue(uid, apps.TokensHash([]string{"old-token", "new-token"})))
	t.Logf("the Lease reported old+new %s after the projection changed", time.Since(start).Round(time.Millisecond))
	expectOK(t, sendTo(t, app, "new-token", callback{command: tencent.CommandCreateRoom, body: body(1)}))
	expectOK(t, sendTo(t, app, "old-token", callback{command: tencent.CommandCreateRoom, body: body(2)}))

	start = time.Now()
	g.Expect(writeProjection(context.Background(), app, "new-token")).To(Succeed())
	g.Eventually(suiteLease, 2*time.Second, 10*time.Millisecond).Should(HaveKeyWithValue(uid, apps.TokensHash([]string{"new-token"})))
	t.Logf("the Lease reported new %s after the projection changed", time.Since(start).Round(time.Millisecond))
	g.Expect(sendTo(t, app, "old-token", callback{command: tencent.CommandCreateRoom, body: body(3)}).status).To(Equal(http.StatusUnauthorized))
	expectOK(t, sendTo(t, app, "new-token", callback{command: tencent.CommandCreateRoom, body: body(4)}))

	// The Lease is one the controller counts as a live replica that has the new set.
	var lease coordinationv1.Lease
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: suiteReplica}, &lease)).To(Succeed())
	g.Expect(lease.Labels).To(HaveKey(apps.ReplicaLabel))
	g.Expect(*lease.Spec.HolderIdentity).To(Equal(suiteReplica))
	g.Expect(*lease.Spec.LeaseDurationSeconds).To(BeEquivalentTo(apps.ReplicaLeaseDuration / time.Second))
	loaded, alive := apps.AllLoaded([]coordinationv1.Lease{lease}, app.UID, apps.TokensHash([]string{"new-token"}), time.Now())
	g.Expect(loaded).To(BeTrue())
	g.Expect(alive).To(Equal(1))
}

// A projection emptied, or holding the placeholder, keeps the tokens the app had.
func TestEmptiedProjectionKeepsTokens(t *testing.T) {
	g := NewWithT(t)
	app := newApp(t, "emptied", 1400000401, "kept-token")
	waitServed(t, app, "kept-token")
	reloadErrors := func() float64 { return testutil.ToFloat64(metrics.TokenReloadErrors.WithLabelValues(labelOf(app))) }
	for i, data := range []string{"", "# nothing here\n", PlaceholderToken} {
		g.Expect(writeProjection(context.Background(), app, data)).To(Succeed())
		g.Eventually(reloadErrors, 5*time.Second, 20*time.Millisecond).Should(BeEquivalentTo(i + 1))
		expectOK(t, sendTo(t, app, "kept-token", callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("kept-%d", i), "u", time.Now().Unix())}))
		r := sendTo(t, app, "", callback{command: tencent.CommandCreateRoom, body: createBody("never", "u", time.Now().Unix()), unsigned: true})
		g.Expect(r.status).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(suiteLease(g)).To(HaveKeyWithValue(string(app.UID), apps.TokensHash([]string{"kept-token"})))
}

// An app whose projection has not come yet refuses callbacks, unless it allows unsigned
// ones.
func TestAppWithoutTokenYet(t *testing.T) {
	g := NewWithT(t)
	closed := newApp(t, "no-token", 1400000501, "")
	open := newApp(t, "trial", 1400000502, "", func(a *livev1.LiveApp) { a.Spec.Callback.AllowUnsigned = true })
	g.Eventually(func() bool { return srv.apps.lookup("1400000501") != nil && srv.apps.lookup("1400000502") != nil }, 10*time.Second).Should(BeTrue())
	r := sendTo(t, closed, "", callback{command: tencent.CommandCreateRoom, body: createBody("unsigned", "u", time.Now().Unix()), unsigned: true})
	g.Expect(r.status).To(Equal(http.StatusUnauthorized))
	g.Expect(r.ErrorInfo).To(ContainSubstring("no callback token yet"))
	expectOK(t, sendTo(t, open, "", callback{command: tencent.CommandCreateRoom, body: createBody("unsigned", "u", time.Now().Unix()), unsigned: true}))
	g.Expect(roomIn(t, "trial", "unsigned").Status.Phase).To(Equal(livev1.RoomPhaseLive))
}

func setMetadataBody(roomID string, ms int64, pairs ...string) string {
	entries := make([]string, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		entries = append(entries, fmt.Sprintf(`{"Key":%q,"Value":%q}`, pairs[i], pairs[i+1]))
	}
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterSetMetadata","Operator_Account":"admin","RoomId":%q,"Metadata":[%s],"EventTime":%d}`, roomID, strings.Join(entries, ","), ms)
}

func delMetadataBody(roomID string, ms int64, keys ...string) string {
	return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDelMetadata","Operator_Account":"admin","RoomId":%q,"Keys":["%s"],"EventTime":%d}`, roomID, strings.Join(keys, `","`), ms)
}

// Metadata callbacks keep status.metadata, each key ordered by its own event time, and
// what Tencent's limits forbid is refused: one callback at decoding (400), a sum of them
// before anything is written (422).
func TestMetadataThroughTheServer(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Now().Unix() - 100
	ms := t0 * 1000
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("meta-room", "u", t0)}))
	expectOK(t, send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-room", ms+1000, "k1", "a", "k2", "b")}))
	expectOK(t, send(t, callback{command: tencent.CommandDelMetadata, body: delMetadataBody("meta-room", ms+3000, "k1")}))
	expectOK(t, send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-room", ms+2000, "k1", "late")}))
	room := getRoom(t, "meta-room")
	g.Expect(room.Status.Metadata).To(Equal(map[string]string{"k2": "b"}))
	g.Expect(room.Status.EventTimes.MetadataKeys).To(Equal(map[string]int64{"k1": ms + 3000, "k2": ms + 1000}))

	eleven := make([]string, 0, 22)
	for i := range 11 {
		eleven = append(eleven, fmt.Sprintf("key-%d", i), "v")
	}
	r := send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-room", ms+4000, eleven...)})
	g.Expect(r.status).To(Equal(http.StatusBadRequest))
	g.Expect(r.ErrorInfo).To(ContainSubstring("more than 10"))

	// Together within the limits, one more byte is too much.
	full := make([]string, 0, 16)
	for i := range 8 {
		full = append(full, fmt.Sprintf("big-%d", i), strings.Repeat("v", tencent.MaxMetadataValueBytes))
	}
	expectOK(t, send(t, callback{command: tencent.CommandCreateRoom, body: createBody("meta-full", "u", t0)}))
	expectOK(t, send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-full", ms+1000, full...)}))
	before := getRoom(t, "meta-full").ResourceVersion
	r = send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-full", ms+2000, "one-more", "x")})
	g.Expect(r.status).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(r.ErrorInfo).To(ContainSubstring("16384"))
	g.Expect(getRoom(t, "meta-full").ResourceVersion).To(Equal(before), "nothing stored")
	// Replacing a value within the total is fine.
	expectOK(t, send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-full", ms+3000, "big-0", "small")}))
	g.Expect(getRoom(t, "meta-full").Status.Metadata).To(HaveKeyWithValue("big-0", "small"))
	// An eleventh key is refused as well.
	expectOK(t, send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-full", ms+4000, "k8", "x", "k9", "x")}))
	r = send(t, callback{command: tencent.CommandSetMetadata, body: setMetadataBody("meta-full", ms+5000, "k10", "x")})
	g.Expect(r.status).To(Equal(http.StatusUnprocessableEntity))
}

// Tencent's room quota warning sets the LiveApp's status.roomQuota, under the callback
// server's field manager, with a Warning Event and a metric.
func TestRoomQuotaWarning(t *testing.T) {
	g := NewWithT(t)
	app := newApp(t, "quota", 1400000601, "quota-token")
	waitServed(t, app, "quota-token")
	warnings := func() float64 { return testutil.ToFloat64(metrics.QuotaWarnings.WithLabelValues(labelOf(app))) }
	at := time.Now().Add(-time.Minute).UnixMilli()
	warning := func(cur int, ms int64) string {
		return fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoomReachingThreshold","Operator_Account":"admin","EventTime":%d,"CurRoomCount":%d,"MaxRoomCount":500}`, ms, cur)
	}
	expectOK(t, sendTo(t, app, "quota-token", callback{command: tencent.CommandCreateRoomReachingThreshold, body: warning(400, at)}))
	var got livev1.LiveApp
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &got)).To(Succeed())
	g.Expect(got.Status.RoomQuota).NotTo(BeNil())
	g.Expect(got.Status.RoomQuota.Rooms).To(BeEquivalentTo(400))
	g.Expect(got.Status.RoomQuota.MaxRooms).To(BeEquivalentTo(500))
	g.Expect(got.Status.RoomQuota.ReportedAt.Unix()).To(Equal(at / 1000))
	g.Expect(slices.ContainsFunc(got.ManagedFields, func(mf metav1.ManagedFieldsEntry) bool {
		return mf.Manager == FieldOwner && mf.Subresource == "status" && mf.FieldsV1 != nil && strings.Contains(mf.FieldsV1.GetRawString(), "roomQuota")
	})).To(BeTrue(), "status.roomQuota is the callback server's")
	g.Expect(warnings()).To(BeEquivalentTo(1))
	g.Eventually(func() []string {
		var list eventsv1.EventList
		_ = k8s.List(context.Background(), &list, client.InNamespace("quota"))
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "LiveApp" && e.Regarding.Name == app.Name && e.Type == corev1.EventTypeWarning {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}, 10*time.Second).Should(ContainElement("RoomQuotaNearLimit"))

	// An older warning, delivered late, changes nothing once the newer one is known.
	g.Eventually(func() *livev1.RoomQuotaStatus {
		return srv.apps.lookup("1400000601").obj.Status.RoomQuota
	}, 10*time.Second).ShouldNot(BeNil())
	expectOK(t, sendTo(t, app, "quota-token", callback{command: tencent.CommandCreateRoomReachingThreshold, body: warning(350, at-60000)}))
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &got)).To(Succeed())
	g.Expect(got.Status.RoomQuota.Rooms).To(BeEquivalentTo(400))
	expectOK(t, sendTo(t, app, "quota-token", callback{command: tencent.CommandCreateRoomReachingThreshold, body: warning(450, time.Now().UnixMilli())}))
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &got)).To(Succeed())
	g.Expect(got.Status.RoomQuota.Rooms).To(BeEquivalentTo(450))
	g.Expect(warnings()).To(BeEquivalentTo(3))
}

// appLabels lists the values of the app label of a metric, as scraped.
func appLabels(t *testing.T, name string) []string {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "app" && !slices.Contains(out, l.GetValue()) {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	return out
}

// Metrics carry the serving LiveApp, "unknown" for SdkAppids no app serves, and lose
// an app's series when it goes.
func TestMetricsCarryTheApp(t *testing.T) {
	g := NewWithT(t)
	app := newApp(t, "metered", 1400000701, "metered-token")
	waitServed(t, app, "metered-token")
	label := labelOf(app)
	rt := time.Now().Unix()
	create := callback{command: tencent.CommandCreateRoom, body: createBody("metered-room", "u", rt), requestTime: rt}
	expectOK(t, sendTo(t, app, "metered-token", create))
	expectOK(t, sendTo(t, app, "metered-token", create))
	g.Expect(sendTo(t, app, "wrong", create).status).To(Equal(http.StatusUnauthorized))
	g.Expect(send(t, callback{command: tencent.CommandCreateRoom, body: create.body, sdkAppID: "1400000799"}).status).To(Equal(http.StatusForbidden))

	g.Expect(testutil.ToFloat64(metrics.Requests.WithLabelValues(label, tencent.CommandCreateRoom, "200"))).To(BeEquivalentTo(2))
	g.Expect(testutil.ToFloat64(metrics.Events.WithLabelValues(label, tencent.CommandCreateRoom, "created"))).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(metrics.Duplicates.WithLabelValues(label))).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(metrics.Rejections.WithLabelValues(label, reasonBadSign))).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(metrics.Requests.WithLabelValues(unknownApp, tencent.CommandCreateRoom, "403"))).To(BeNumerically(">=", 1))
	for _, name := range []string{"liveroom_callback_requests_total", "liveroom_callback_rejections_total", "liveroom_callback_events_total", "liveroom_callback_duplicates_total"} {
		g.Expect(appLabels(t, name)).To(ContainElement(label), name)
	}

	g.Expect(k8s.Delete(context.Background(), app)).To(Succeed())
	g.Eventually(func() []string { return appLabels(t, "liveroom_callback_requests_total") }, 10*time.Second).ShouldNot(ContainElement(label))
	g.Expect(appLabels(t, "liveroom_callback_tokens")).NotTo(ContainElement(label))
}

// Each app forwards to its own backend, with the Authorization of its projection; its
// fan-out follows the LiveApp as it changes.
func TestForwardingFollowsTheApp(t *testing.T) {
	g := NewWithT(t)
	first, second := &backend{answer: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`}, &backend{answer: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`}
	hs1, hs2 := httptest.NewServer(first), httptest.NewServer(second)
	t.Cleanup(hs1.Close)
	t.Cleanup(hs2.Close)
	app := newApp(t, "forwarding", 1400000801, "", func(a *livev1.LiveApp) {
		a.Spec.Forward = &livev1.LiveAppForward{URL: hs1.URL + "/tencent", AuthorizationSecretRef: &livev1.SecretKeyRef{Name: "backend", Key: "authorization"}}
	})
	g.Expect(writeProjectionData(context.Background(), app, map[string][]byte{apps.TokensKey: []byte("fwd-token"), apps.ForwardAuthorizationKey: []byte("Bearer backend-one")})).To(Succeed())
	waitServed(t, app, "fwd-token")
	g.Eventually(func() bool { return srv.apps.lookup("1400000801").forwarder != nil }, 10*time.Second).Should(BeTrue())

	n := 0
	sendOne := func() {
		n++
		expectOK(t, sendTo(t, app, "fwd-token", callback{command: tencent.CommandCreateRoom, body: createBody(fmt.Sprintf("forwarded-%d", n), "u", time.Now().Unix())}))
	}
	sendOne()
	g.Eventually(first.got, 5*time.Second).Should(HaveLen(1))
	first.mu.Lock()
	g.Expect(first.authorizations).To(Equal([]string{"Bearer backend-one"}))
	first.mu.Unlock()

	// The backend moves: the next callbacks go to the new one.
	var cur livev1.LiveApp
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &cur)).To(Succeed())
	cur.Spec.Forward.URL = hs2.URL + "/tencent"
	g.Expect(k8s.Update(context.Background(), &cur)).To(Succeed())
	g.Eventually(func() int { sendOne(); return len(second.got()) }, 10*time.Second, 100*time.Millisecond).Should(BeNumerically(">=", 1))

	// The fan-out is removed: nothing more is forwarded.
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &cur)).To(Succeed())
	cur.Spec.Forward = nil
	g.Expect(k8s.Update(context.Background(), &cur)).To(Succeed())
	g.Eventually(func() bool { return srv.apps.lookup("1400000801").forwarder == nil }, 10*time.Second).Should(BeTrue())
	sendOne()
	last := fmt.Sprintf("forwarded-%d", n)
	g.Consistently(func() []string { return append(first.got(), second.got()...) }, 500*time.Millisecond).
		ShouldNot(ContainElement(ContainSubstring(last)))
}

// A replica's Lease is there while it serves and gone once it stopped.
func TestReplicaLeaseDeletedOnShutdown(t *testing.T) {
	g := NewWithT(t)
	store := roomstore.New(roomstore.Config{Client: writes, APIReader: k8s, FieldOwner: FieldOwner})
	counts := audience.New(audience.Config{Log: logr.Discard()}, storesOf(store))
	second := New(Options{BindAddress: "127.0.0.1:0", OperatorNamespace: operatorNamespace, Replica: "second-replica",
		Apps: srvCache, Client: k8s}, store, counts, nil, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Start(ctx) }()
	t.Cleanup(cancel)

	key := types.NamespacedName{Namespace: operatorNamespace, Name: "second-replica"}
	var lease coordinationv1.Lease
	g.Eventually(func() error { return k8s.Get(context.Background(), key, &lease) }, 10*time.Second).Should(Succeed())
	g.Expect(apps.LoadedTokens(&lease)).To(HaveKey(string(suiteApp.UID)), "it reports the tokens it loaded")
	g.Eventually(second.Addr).ShouldNot(BeNil(), "it serves once the apps are loaded")

	cancel()
	g.Eventually(done, 20*time.Second).Should(Receive(BeNil()))
	err := k8s.Get(context.Background(), key, &lease)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Lease is deleted: %v", err)
}
