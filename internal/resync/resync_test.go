package resync

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// hookLister calls onPage before each page reaches the resync and hides some rooms
// from the listing (not from get_room_info).
type hookLister struct {
	Lister
	hide   map[string]bool
	onPage func(page int)
}

func (h *hookLister) ListAllRooms(ctx context.Context, fn func(page []tencent.RoomInfo) error) error {
	n := 0
	return h.Lister.ListAllRooms(ctx, func(page []tencent.RoomInfo) error {
		n++
		if h.onPage != nil {
			h.onPage(n)
		}
		var kept []tencent.RoomInfo
		for _, ri := range page {
			if !h.hide[string(ri.RoomID)] {
				kept = append(kept, ri)
			}
		}
		return fn(kept)
	})
}

func TestNeedLeaderElection(t *testing.T) {
	if !(&Resyncer{}).NeedLeaderElection() {
		t.Fatal("the resync must run in the leader only")
	}
}

func TestMissingRoomAppears(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{})
	want := room("lost-create")
	f.fake.AddRoom(want)

	res, err := f.r.RunOnce(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 1, Created: 1}))

	lr := f.get("lost-create")
	g.Expect(lr.Origin()).To(Equal(livev1.OriginResync))
	g.Expect(lr.Spec.SDKAppID).To(BeEquivalentTo(testAppID))
	// The listing has no type, seat settings, member limit or notice: these come from
	// get_room_info.
	g.Expect(lr.Spec.RoomType).To(Equal("Live"))
	g.Expect(lr.Spec.Seats).To(Equal(livev1.SeatSpec{Enabled: true, Mode: livev1.SeatModeApplyToTake, Max: 6}))
	g.Expect(lr.Spec.MaxMemberCount).To(BeEquivalentTo(500))
	g.Expect(lr.Spec.Notice).To(Equal("welcome"))
	g.Expect(lr.Spec.PublicVisible).To(Equal(new(true)))
	g.Expect(lr.Spec.RoomName).To(Equal("Room lost-create"))
	g.Expect(lr.Spec.Owner).To(Equal("host-lost-create"))
	g.Expect(lr.Spec.CoverURL).To(Equal(*want.CoverURL))
	g.Expect(lr.Spec.Categories).To(Equal([]int64{1, 7}))
	g.Expect(lr.Spec.ActivityStatus).To(BeEquivalentTo(2))
	g.Expect(lr.Labels).To(HaveKeyWithValue(livev1.RoomTypeLabel, "Live"))
	g.Expect(lr.Status.Phase).To(Equal(livev1.RoomPhaseLive))
	g.Expect(lr.Status.Owner).To(Equal("host-lost-create"))
	g.Expect(lr.Status.CreateTime.Unix()).To(BeEquivalentTo(want.CreateTime))

	g.Expect(testutil.ToFloat64(f.metrics.Runs.WithLabelValues("success"))).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(f.metrics.Runs.WithLabelValues("error"))).To(BeEquivalentTo(0))
	g.Expect(testutil.ToFloat64(f.metrics.RoomsCreated)).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(f.metrics.RoomsListed)).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(f.metrics.LastSuccess)).To(BeNumerically(">", 0))
	g.Expect(testutil.CollectAndCount(f.metrics.Duration.(prometheus.Histogram))).To(Equal(1))
}

// MatchFields compares a Result ignoring its duration.
func sameCounts(d time.Duration, want Result) OmegaMatcher {
	want.Duration = d
	return Equal(want)
}

func TestVanishedRoomIsSkipped(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{})
	f.fake.AddRoom(room("short-lived"))
	// Destroyed between the listing and get_room_info.
	f.fake.FailNext(tencent.RESTGetRoomInfo, tencent.CodeRoomNotFound, 1)

	res, err := f.r.RunOnce(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 1, Skipped: 1}))
	g.Expect(f.cached(g)).To(BeEmpty())
	g.Expect(f.writes.Writes()).To(BeZero())
}

func TestRoomErrorsDoNotStopOthers(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{unlimited: true})
	for i := range 5 {
		f.fake.AddRoom(room(fmt.Sprintf("room-%d", i)))
	}
	// One get_room_info fails for good (2 attempts, the client's MaxAttempts).
	f.fake.FailNext(tencent.RESTGetRoomInfo, tencent.CodeInternal, 2)
	f.r.Workers = 1 // so that both failures hit the same room

	res, err := f.r.RunOnce(context.Background())
	g.Expect(err).To(HaveOccurred())
	g.Expect(tencent.IsCode(err, tencent.CodeInternal)).To(BeTrue(), "%v", err)
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 5, Created: 4, Errors: 1}))
	g.Expect(testutil.ToFloat64(f.metrics.Errors)).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(f.metrics.Runs.WithLabelValues("error"))).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(f.metrics.RoomsListed)).To(BeEquivalentTo(5), "the listing completed")

	f.waitCached(4)
	res, err = f.r.RunOnce(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 5, Created: 1, Unchanged: 4}))
}

func TestEndsRoomsAbsentFromTencent(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	hourAgo := time.Now().Add(-time.Hour).Truncate(time.Second)

	f.fake.AddRoom(room("cb-present"))
	f.fake.AddRoom(room("cb-hidden"))
	f.liveRoom("cb-present", livev1.OriginCallback, &hourAgo)
	f.liveRoom("cb-hidden", livev1.OriginCallback, &hourAgo)
	f.liveRoom("cb-gone", livev1.OriginCallback, &hourAgo)
	f.liveRoom("rs-gone", livev1.OriginResync, &hourAgo)
	if _, err := f.store.Mutate(ctx, "cb-ended", livev1.OriginCallback, func(r *livev1.LiveRoom) roomstate.Outcome {
		r.Status.Phase, r.Status.EndReason = livev1.RoomPhaseEnded, livev1.EndReasonDestroyByUser
		r.Status.CreateTime = &metav1.Time{Time: hourAgo}
		r.Status.EndTime = &metav1.Time{Time: hourAgo.Add(time.Minute)}
		return roomstate.Ended
	}); err != nil {
		t.Fatal(err)
	}
	declared := f.declaredRoom("declared-gone", createCallback(room("declared-gone"), time.Second))
	f.waitCached(6)
	endedRV := f.get("cb-ended").ResourceVersion

	// Rooms a callback creates while the listing runs, absent from Tencent's listing.
	f.r.Tencent = &hookLister{
		Lister: f.r.Tencent,
		hide:   map[string]bool{"cb-hidden": true},
		onPage: func(page int) {
			if page != 1 {
				return
			}
			now := time.Now()
			f.liveRoom("cb-during", livev1.OriginCallback, &now)
			f.liveRoom("cb-during-no-createtime", livev1.OriginCallback, nil)
			f.waitCached(8)
		},
	}
	res, err := f.r.RunOnce(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 1, Updated: 1, Ended: 2}))

	for _, id := range []string{"cb-gone", "rs-gone"} {
		lr := f.get(id)
		g.Expect(lr.Status.Phase).To(Equal(livev1.RoomPhaseEnded), id)
		g.Expect(lr.Status.EndReason).To(Equal(livev1.EndReasonNotFoundInTencent), id)
		g.Expect(lr.Status.EndTime).NotTo(BeNil(), id)
	}
	for _, id := range []string{"cb-present", "cb-hidden", "cb-during", "cb-during-no-createtime"} {
		g.Expect(f.get(id).Status.Phase).To(Equal(livev1.RoomPhaseLive), id)
	}
	g.Expect(f.get("cb-ended").ResourceVersion).To(Equal(endedRV), "an ended room is left alone")
	g.Expect(f.get("declared-gone").ResourceVersion).To(Equal(declared.ResourceVersion), "declared rooms are never touched")
	g.Expect(f.get("declared-gone").Status.Phase).To(Equal(livev1.RoomPhaseLive))
	g.Expect(testutil.ToFloat64(f.metrics.RoomsEnded)).To(BeEquivalentTo(2))
	// get_room_info confirmed both rooms gone and found the hidden one.
	g.Expect(f.fake.Calls(tencent.RESTGetRoomInfo)).To(Equal(3))
}

// A room without status.createTime is as old as its object: ended once that is more
// than CreateGrace older than the start of the listing.
func TestCreationTimestampCountsWithoutCreateTime(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{})
	f.liveRoom("cb-no-createtime", livev1.OriginCallback, nil)
	f.waitCached(1)
	created := f.get("cb-no-createtime").CreationTimestamp.Time

	f.r.Now = func() time.Time { return created.Add(CreateGrace - time.Second) }
	res, err := f.r.RunOnce(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Ended).To(BeZero(), "created within the grace period before the listing")

	f.r.Now = func() time.Time { return created.Add(CreateGrace + time.Second) }
	res, err = f.r.RunOnce(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Ended).To(Equal(1))
	lr := f.get("cb-no-createtime")
	g.Expect(lr.Status.Phase).To(Equal(livev1.RoomPhaseEnded))
	g.Expect(lr.Status.EndReason).To(Equal(livev1.EndReasonNotFoundInTencent))
}

func TestThousandRoomsOverFiftyPages(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{unlimited: true})
	for i := range 1000 {
		f.fake.AddRoom(room(fmt.Sprintf("bulk-%04d", i)))
	}

	res, err := f.r.RunOnce(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 1000, Created: 1000}))
	g.Expect(f.fake.Calls(tencent.RESTGetRoomList)).To(Equal(50))
	g.Expect(f.fake.Calls(tencent.RESTGetRoomInfo)).To(Equal(1000))
	t.Logf("1000 rooms created in %v with %d API writes", res.Duration, f.writes.Writes())

	f.waitCached(1000)
	for id, lr := range f.cached(g) {
		g.Expect(lr.Origin()).To(Equal(livev1.OriginResync), id)
		g.Expect(lr.Status.Phase).To(Equal(livev1.RoomPhaseLive), id)
		g.Expect(lr.Spec.Seats.Max).To(BeEquivalentTo(6), id)
	}
	g.Expect(testutil.ToFloat64(f.metrics.RoomsCreated)).To(BeEquivalentTo(1000))
	g.Expect(testutil.ToFloat64(f.metrics.RoomsListed)).To(BeEquivalentTo(1000))

	f.writes.Reset()
	res, err = f.r.RunOnce(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 1000, Unchanged: 1000}))
	g.Expect(f.writes.Writes()).To(BeZero())
}

func TestListFailureEndsNothing(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{unlimited: true})
	ctx := context.Background()
	for i := range 70 {
		f.fake.AddRoom(room(fmt.Sprintf("paged-%02d", i)))
	}
	hourAgo := time.Now().Add(-time.Hour)
	f.liveRoom("cb-gone", livev1.OriginCallback, &hourAgo)
	f.waitCached(1)
	f.fake.FailListPage(3, tencent.CodeInternal) // retryable: fails every attempt

	res, err := f.r.RunOnce(ctx)
	g.Expect(err).To(MatchError(ContainSubstring("page 3")))
	g.Expect(tencent.IsCode(err, tencent.CodeInternal)).To(BeTrue())
	g.Expect(res.Ended).To(BeZero())
	g.Expect(res.Listed).To(Equal(40), "pages 1 and 2")
	g.Expect(res.Created).To(Equal(40))
	g.Expect(f.get("cb-gone").Status.Phase).To(Equal(livev1.RoomPhaseLive))
	g.Expect(testutil.ToFloat64(f.metrics.Runs.WithLabelValues("error"))).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(f.metrics.Runs.WithLabelValues("success"))).To(BeEquivalentTo(0))
	g.Expect(testutil.ToFloat64(f.metrics.Errors)).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(f.metrics.RoomsListed)).To(BeEquivalentTo(0), "set by complete listings only")
	g.Expect(testutil.ToFloat64(f.metrics.LastSuccess)).To(BeEquivalentTo(0))
	g.Expect(testutil.ToFloat64(f.metrics.RoomsEnded)).To(BeEquivalentTo(0))

	f.fake.FailListPage(3, 0)
	f.waitCached(41)
	res, err = f.r.RunOnce(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 70, Created: 30, Unchanged: 40, Ended: 1}))
	g.Expect(f.get("cb-gone").Status.EndReason).To(Equal(livev1.EndReasonNotFoundInTencent))
}

func TestSecondRunWritesNothing(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{unlimited: true})
	ctx := context.Background()
	for i := range 45 {
		f.fake.AddRoom(room(fmt.Sprintf("steady-%02d", i)))
	}
	// One room came through its create callback, one is declared, both listed.
	cbInfo, _ := f.fake.Room("steady-00")
	if _, err := f.store.Mutate(ctx, "steady-00", livev1.OriginCallback, createCallback(cbInfo, 120*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	declaredInfo, _ := f.fake.Room("steady-01")
	f.declaredRoom("steady-01", createCallback(declaredInfo, 80*time.Millisecond))
	f.waitCached(2)
	f.writes.Reset()

	res, err := f.r.RunOnce(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Listed).To(Equal(45))
	g.Expect(res.Created).To(Equal(43))
	g.Expect(f.writes.Writes()).To(BeNumerically(">=", 2*43))

	f.waitCached(45)
	before := map[string]string{}
	for id, lr := range f.cached(g) {
		before[id] = lr.ResourceVersion
	}
	f.writes.Reset()
	res, err = f.r.RunOnce(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(sameCounts(res.Duration, Result{Listed: 45, Unchanged: 45}))
	g.Expect(f.writes.Writes()).To(BeZero(), "a resync with nothing changed writes nothing")
	for id, rv := range before {
		g.Expect(f.get(id).ResourceVersion).To(Equal(rv), id)
	}
}

func TestStartRunsAtOnceThenPeriodically(t *testing.T) {
	t.Run("at once", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t, fixtureOpts{unlimited: true})
		f.fake.AddRoom(room("first"))
		f.r.Interval = time.Hour
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.r.Start(ctx) }()

		g.Eventually(func() float64 { return testutil.ToFloat64(f.metrics.Runs.WithLabelValues("success")) }).
			WithTimeout(10 * time.Second).Should(BeEquivalentTo(1))
		g.Expect(f.get("first").Status.Phase).To(Equal(livev1.RoomPhaseLive))
		g.Consistently(func() int { return f.fake.Calls(tencent.RESTGetRoomList) }).
			WithTimeout(500 * time.Millisecond).Should(Equal(1))
		cancel()
		g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
	})

	t.Run("periodically, through errors", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t, fixtureOpts{unlimited: true})
		f.fake.AddRoom(room("later"))
		f.fake.FailListPage(1, tencent.CodeNoPermission) // not retryable
		f.r.Interval = 100 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- f.r.Start(ctx) }()

		g.Eventually(func() float64 { return testutil.ToFloat64(f.metrics.Runs.WithLabelValues("error")) }).
			WithTimeout(10 * time.Second).Should(BeNumerically(">=", 3))
		g.Expect(done).NotTo(Receive(), "a failed resync does not stop Start")
		f.fake.FailListPage(1, 0)
		g.Eventually(func() float64 { return testutil.ToFloat64(f.metrics.Runs.WithLabelValues("success")) }).
			WithTimeout(10 * time.Second).Should(BeNumerically(">=", 2))
		g.Expect(f.get("later").Origin()).To(Equal(livev1.OriginResync))
		cancel()
		g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
	})
}

// The resync runs in the controller, whose cache drops the room facts only callbacks
// report (seats, admins, audience). Its writes must keep them.
func TestResyncKeepsFactsItsCacheDrops(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	created := time.Now().Add(-time.Hour)
	f.liveRoom("rich", livev1.OriginCallback, &created)
	facts := func(r *livev1.LiveRoom) roomstate.Outcome {
		r.Status.Seats = []livev1.SeatStatus{{Index: 0, Member: "host"}, {Index: 1, Member: "guest"}}
		r.Status.OccupiedSeats = 2
		r.Status.Admins = []string{"a1", "a2"}
		r.Status.Audience = livev1.AudienceStatus{Online: 42, Peak: 50}
		return roomstate.Updated
	}
	_, err := f.store.Mutate(ctx, "rich", livev1.OriginCallback, facts)
	g.Expect(err).NotTo(HaveOccurred())
	f.waitCached(1)
	cached := f.cached(g)["rich"]
	g.Expect(cached.Status.Seats).To(BeEmpty(), "the controller's cache drops seats")

	// Tencent lists the room with settings the cluster lacks: the resync writes them.
	listed := room("rich")
	listed.CreateTime = tencent.FlexInt(created.Unix())
	f.fake.AddRoom(listed)
	res, err := f.r.RunOnce(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Updated).To(Equal(1))

	stored := f.get("rich")
	g.Expect(stored.Spec.RoomName).To(Equal("Room rich"))
	g.Expect(stored.Status.Seats).To(HaveLen(2))
	g.Expect(stored.Status.OccupiedSeats).To(BeEquivalentTo(2))
	g.Expect(stored.Status.Admins).To(Equal([]string{"a1", "a2"}))
	g.Expect(stored.Status.Audience.Online).To(BeEquivalentTo(42))
}
