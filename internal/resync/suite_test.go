package resync

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/resync/resynctest"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

const (
	testAppID  = 1400000000
	testAdmin  = "administrator"
	testKey    = "test-secret-key"
	fieldOwner = "liveroom-callback" // the callback server's field manager
)

// The suite shares one control plane and one manager whose cache has the RoomId index.
var (
	k8s   client.Client // direct, uncached
	mgr   manager.Manager
	nsSeq atomic.Int64
)

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	suite, err := testenv.StartSuite()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer suite.Stop()
	k8s = suite.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if mgr, err = suite.NewManager(caches.Controller()); err != nil {
		panic(err)
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		panic(err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			panic(err)
		}
	}()
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	// IndexRoomID registered the LiveRoom informer, so this waits for it too.
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		panic("cache did not sync")
	}
	return m.Run()
}

// fixture is one test's namespace, fake Tencent server and resyncer.
type fixture struct {
	t       *testing.T
	ns      string
	fake    *faketencent.Server
	tc      *tencent.Client
	writes  *resynctest.WriteCounter
	store   *roomstore.Store
	metrics *AppMetrics
	r       *Resyncer
}

type fixtureOpts struct {
	unlimited bool // lift the fake's list limit and the client's rates
}

func newFixture(t *testing.T, opts fixtureOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := fmt.Sprintf("resync-%d", nsSeq.Add(1))
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	fake := faketencent.New(testAppID, testAdmin, testKey)
	t.Cleanup(fake.Close)
	cfg := tencent.Config{
		BaseURL: fake.URL(), SDKAppID: testAppID, AdminUser: testAdmin,
		SecretKey:   func() (string, error) { return testKey, nil },
		MaxAttempts: 2, BaseBackoff: time.Millisecond,
	}
	if opts.unlimited {
		fake.SetListRateLimit(0)
		cfg.ListRate, cfg.DefaultRate = -1, -1
	}
	tc, err := tencent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writes := resynctest.CountWrites(mgr.GetClient())
	store := roomstore.New(roomstore.Config{
		Client: writes, APIReader: mgr.GetAPIReader(), CacheTrimsRooms: true,
		Namespace: ns, SDKAppID: testAppID, FieldOwner: fieldOwner,
	})
	metrics := NewMetrics(prometheus.NewRegistry()).For(ns + "/app")
	return &fixture{
		t: t, ns: ns, fake: fake, tc: tc, writes: writes, store: store, metrics: metrics,
		r: &Resyncer{
			Store: store, Reader: mgr.GetCache(), Tencent: resynctest.ListFieldsOnly(tc),
			Namespace: ns, Metrics: metrics, Log: logr.Discard(),
		},
	}
}

// room is a Tencent room as the fake stores it, created an hour ago.
func room(id string) tencent.RoomInfo {
	name, cover, notice := "Room "+id, "https://example.com/"+id+".png", "welcome"
	return tencent.RoomInfo{
		RoomID: tencent.FlexString(id), RoomName: &name, RoomType: tencent.RoomTypeLive,
		OwnerAccount: "host-" + tencent.FlexString(id), MaxMemberCount: new(tencent.FlexInt(500)),
		IsMessageDisabled: new(tencent.FlexBool(false)), IsSeatEnabled: new(tencent.FlexBool(true)),
		TakeSeatMode: tencent.SeatModeApplyToTake, MaxSeatCount: new(tencent.FlexInt(6)),
		CreateTime: tencent.FlexInt(time.Now().Add(-time.Hour).Unix()), IsPublicVisible: new(tencent.FlexBool(true)),
		CoverURL: &cover, Notice: &notice, Category: []tencent.FlexInt{1, 7},
		ActivityStatus: new(tencent.FlexInt(2)), ViewCount: 10,
	}
}

// cached lists the namespace's LiveRooms from the manager's cache, keyed by RoomId.
func (f *fixture) cached(g Gomega) map[string]livev1.LiveRoom {
	var list livev1.LiveRoomList
	g.Expect(mgr.GetCache().List(context.Background(), &list, client.InNamespace(f.ns))).To(Succeed())
	out := map[string]livev1.LiveRoom{}
	for _, r := range list.Items {
		out[r.Spec.RoomID] = r
	}
	return out
}

// waitCached waits until the API server holds n rooms in the namespace and the cache
// shows each of them at its latest resourceVersion, so a resync sees every earlier write.
func (f *fixture) waitCached(n int) {
	f.t.Helper()
	NewWithT(f.t).Eventually(func(g Gomega) {
		var stored livev1.LiveRoomList
		g.Expect(mgr.GetAPIReader().List(context.Background(), &stored, client.InNamespace(f.ns))).To(Succeed())
		g.Expect(stored.Items).To(HaveLen(n))
		cached := f.cached(g)
		for _, r := range stored.Items {
			g.Expect(cached).To(HaveKey(r.Spec.RoomID))
			g.Expect(cached[r.Spec.RoomID].ResourceVersion).To(Equal(r.ResourceVersion), "room %s", r.Spec.RoomID)
		}
	}).WithTimeout(60 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// get reads a LiveRoom by RoomId from the API server.
func (f *fixture) get(id string) *livev1.LiveRoom {
	f.t.Helper()
	var list livev1.LiveRoomList
	if err := mgr.GetAPIReader().List(context.Background(), &list, client.InNamespace(f.ns),
		client.MatchingFields{roomstore.RoomIDField: id}); err != nil {
		f.t.Fatal(err)
	}
	if len(list.Items) != 1 {
		f.t.Fatalf("%d LiveRooms with roomId %q", len(list.Items), id)
	}
	return &list.Items[0]
}

// liveRoom stores a live room of the given origin through the store, as a callback
// would, created in Tencent at createTime (nil: not known).
func (f *fixture) liveRoom(id, origin string, createTime *time.Time) *livev1.LiveRoom {
	f.t.Helper()
	res, err := f.store.Mutate(context.Background(), id, origin, func(r *livev1.LiveRoom) roomstate.Outcome {
		r.Status.Phase = livev1.RoomPhaseLive
		if createTime != nil {
			r.Status.CreateTime = &metav1.Time{Time: *createTime}
		}
		return roomstate.Created
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return res.Room
}

// declaredRoom creates a declared LiveRoom (no origin) and lets the callback store
// apply status to it, as Tencent's create callback does once the controller created the
// room in Tencent.
func (f *fixture) declaredRoom(id string, status roomstate.Mutation) *livev1.LiveRoom {
	f.t.Helper()
	ctx := context.Background()
	r := &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "declared-" + id},
		Spec:       livev1.LiveRoomSpec{RoomID: id, SDKAppID: testAppID, RoomName: "declared"},
	}
	if err := k8s.Create(ctx, r); err != nil {
		f.t.Fatal(err)
	}
	// The store finds rooms in the cache; it must see this one to not create another.
	NewWithT(f.t).Eventually(func(g Gomega) { g.Expect(f.cached(g)).To(HaveKey(id)) }).Should(Succeed())
	res, err := f.store.Mutate(ctx, id, "", status)
	if err != nil {
		f.t.Fatal(err)
	}
	if res.Room.Name != r.Name || !res.Room.Declared() {
		f.t.Fatalf("the status went to LiveRoom %s (origin %q)", res.Room.Name, res.Room.Origin())
	}
	return res.Room
}

// createCallback is the mutation of Tencent's create callback for a room, delivered
// delay after the room's creation.
func createCallback(info tencent.RoomInfo, delay time.Duration) roomstate.Mutation {
	return roomstate.ForCallback(&tencent.Callback{
		Command: tencent.CommandCreateRoom, RoomInfo: &info,
		EventTime: info.CreateTime*1000 + tencent.FlexInt(delay.Milliseconds()),
	}, time.Now())
}
