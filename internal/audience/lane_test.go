package audience

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
)

// fakeStore keeps rooms in memory and applies mutations as the room store does. It can
// lose the answer to a write it stored, as a timed-out request to the API server may.
type fakeStore struct {
	mu     sync.Mutex
	rooms  map[string]*livev1.LiveRoom
	writes []string // room IDs in write order
	// loseAnswer, when set, says whether to fail a write after storing it.
	loseAnswer func() bool
	// fail, when set, fails writes without storing them.
	fail   atomic.Bool
	delay  time.Duration
	stored atomic.Int64
}

func newFakeStore() *fakeStore { return &fakeStore{rooms: map[string]*livev1.LiveRoom{}} }

func (f *fakeStore) Mutate(_ context.Context, roomID, origin string, m roomstate.Mutation) (roomstore.Result, error) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.fail.Load() {
		return roomstore.Result{}, errors.New("API server unavailable")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	room := f.rooms[roomID]
	if room == nil {
		room = &livev1.LiveRoom{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{livev1.OriginAnnotation: origin}},
			Spec: livev1.LiveRoomSpec{RoomID: roomID}}
	}
	room = room.DeepCopy()
	outcome := m(room)
	if outcome != roomstate.Unchanged {
		f.rooms[roomID] = room
		f.writes = append(f.writes, roomID)
		f.stored.Add(1)
	}
	if f.loseAnswer != nil && f.loseAnswer() {
		return roomstore.Result{}, context.DeadlineExceeded
	}
	return roomstore.Result{Outcome: outcome, Room: room}, nil
}

func (f *fakeStore) online(roomID string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.rooms[roomID]; r != nil {
		return r.Status.Audience.Online
	}
	return 0
}

// only is the Stores of a single store, whatever the app.
func only(store Store) Stores {
	return func(string, int64) Store { return store }
}

// in is a room of the test app.
func in(id string) Room { return Room{Namespace: "rooms", SDKAppID: 1400000000, ID: id} }

func startLane(t *testing.T, cfg Config, store Store) (*Lane, context.CancelFunc, chan struct{}) {
	t.Helper()
	return startLaneOn(t, cfg, only(store))
}

func startLaneOn(t *testing.T, cfg Config, stores Stores) (*Lane, context.CancelFunc, chan struct{}) {
	t.Helper()
	if cfg.Replica == "" {
		cfg.Replica = "replica-a"
	}
	cfg.Log = logr.Discard()
	l := New(cfg, stores)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, cancel, done
}

// 1,000 churning rooms: writes stay within the budget, and once the churn stops every
// room's stored count is the net of what was acknowledged.
func TestBudgetHeldAndCountsConverge(t *testing.T) {
	g := NewWithT(t)
	store := newFakeStore()
	const budget = 200.0
	l, _, _ := startLane(t, Config{WritesPerSecond: budget, Interval: 50 * time.Millisecond}, store)

	net := map[string]int64{}
	start := time.Now()
	for i := range 20000 {
		id := fmt.Sprintf("room-%d", i%1000)
		d := int64(rand.IntN(5)) - 2
		net[id] += d
		g.Expect(l.Add(in(id), d, start.UnixMilli()+int64(i))).To(Succeed())
	}
	time.Sleep(time.Second) // the churn's aftermath at full budget; the rate is what is checked
	elapsed := time.Since(start).Seconds()
	g.Expect(float64(store.stored.Load())).To(BeNumerically("<=", budget*elapsed+1), "writes within the budget")

	g.Eventually(func() int { n, _ := l.Backlog(); return n }, 30*time.Second, 20*time.Millisecond).Should(BeZero())
	for id, want := range net {
		g.Expect(store.online(id)).To(Equal(want), "room %s", id)
	}
}

// A hot room is written at most once per interval, however many deltas it gets.
func TestOneWritePerRoomPerInterval(t *testing.T) {
	g := NewWithT(t)
	store := newFakeStore()
	interval := 200 * time.Millisecond
	l, _, _ := startLane(t, Config{WritesPerSecond: 1000, Interval: interval}, store)
	start := time.Now()
	var sent int64
	for time.Since(start) < time.Second {
		g.Expect(l.Add(in("hot"), 1, time.Now().UnixMilli())).To(Succeed())
		sent++
		time.Sleep(time.Millisecond)
	}
	g.Eventually(func() int64 { return store.online("hot") }, 5*time.Second, 10*time.Millisecond).Should(Equal(sent))
	elapsed := time.Since(start)
	g.Expect(store.stored.Load()).To(BeNumerically("<=", int64(elapsed/interval)+1))
}

// With the budget short, the room that waited longest is written first.
func TestStalestRoomFirst(t *testing.T) {
	g := NewWithT(t)
	store := newFakeStore()
	l, _, _ := startLane(t, Config{WritesPerSecond: 20, Interval: time.Millisecond}, store)
	for i := range 10 {
		g.Expect(l.Add(in(fmt.Sprintf("r%d", i)), 1, int64(i))).To(Succeed())
		time.Sleep(2 * time.Millisecond)
	}
	g.Eventually(func() int { store.mu.Lock(); defer store.mu.Unlock(); return len(store.writes) }, 5*time.Second).Should(Equal(10))
	store.mu.Lock()
	defer store.mu.Unlock()
	for i, id := range store.writes {
		g.Expect(id).To(Equal(fmt.Sprintf("r%d", i)))
	}
}

// Answers lost after the write was stored, as a timed-out request can be: the write is
// made again and nothing counts twice.
func TestLostAnswersDoNotCountTwice(t *testing.T) {
	g := NewWithT(t)
	store := newFakeStore()
	store.loseAnswer = func() bool { return rand.IntN(3) == 0 }
	l, _, _ := startLane(t, Config{WritesPerSecond: 1000, Interval: 10 * time.Millisecond}, store)
	net := map[string]int64{}
	for i := range 3000 {
		id := fmt.Sprintf("room-%d", i%50)
		net[id]++
		g.Expect(l.Add(in(id), 1, int64(i))).To(Succeed())
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	g.Eventually(func() int { n, _ := l.Backlog(); return n }, 30*time.Second, 20*time.Millisecond).Should(BeZero())
	for id, want := range net {
		g.Expect(store.online(id)).To(Equal(want), "room %s", id)
	}
}

// Two replicas each aggregate what they receive; their deltas add up, in any order.
func TestReplicasAddUp(t *testing.T) {
	g := NewWithT(t)
	store := newFakeStore()
	a, _, _ := startLane(t, Config{Replica: "a", WritesPerSecond: 500, Interval: 10 * time.Millisecond}, store)
	b, _, _ := startLane(t, Config{Replica: "b", WritesPerSecond: 500, Interval: 10 * time.Millisecond}, store)
	for i := range 500 {
		g.Expect(a.Add(in("shared"), +2, int64(i))).To(Succeed()) // enters at one replica
		g.Expect(b.Add(in("shared"), -1, int64(i))).To(Succeed()) // leaves at the other
	}
	g.Eventually(func() int64 { return store.online("shared") }, 10*time.Second, 10*time.Millisecond).Should(Equal(int64(500)))
}

// While the API server is down, deltas wait and are counted as backlog; they are all
// written once it is back.
func TestOutageKeepsDeltas(t *testing.T) {
	g := NewWithT(t)
	store := newFakeStore()
	store.fail.Store(true)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	l, _, _ := startLane(t, Config{WritesPerSecond: 100, Interval: 20 * time.Millisecond, Metrics: m}, store)
	for i := range 30 {
		g.Expect(l.Add(in(fmt.Sprintf("r%d", i)), 3, int64(i))).To(Succeed())
	}
	g.Eventually(func() float64 { return testutil.ToFloat64(m.Failures) }, 5*time.Second).Should(BeNumerically(">", 0))
	n, oldest := l.Backlog()
	g.Expect(n).To(Equal(30))
	g.Expect(oldest).To(BeNumerically(">", 0))
	store.fail.Store(false)
	g.Eventually(func() int { n, _ := l.Backlog(); return n }, 10*time.Second).Should(BeZero())
	for i := range 30 {
		g.Expect(store.online(fmt.Sprintf("r%d", i))).To(Equal(int64(3)))
	}
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	g.Expect(names).To(HaveKey("liveroom_count_lane_backlog_rooms"))
	g.Expect(names).To(HaveKey("liveroom_count_lane_oldest_unwritten_seconds"))
}

// A graceful stop writes what is left, even above the budget; new deltas are refused.
func TestStopWritesWhatIsLeft(t *testing.T) {
	g := NewWithT(t)
	store := newFakeStore()
	l, cancel, done := startLane(t, Config{WritesPerSecond: 1, Interval: time.Hour}, store)
	for i := range 200 {
		g.Expect(l.Add(in(fmt.Sprintf("r%d", i)), 1, int64(i))).To(Succeed())
	}
	cancel()
	<-done
	for i := range 200 {
		g.Expect(store.online(fmt.Sprintf("r%d", i))).To(Equal(int64(1)), "room r%d", i)
	}
	g.Expect(l.Add(in("late"), 1, 0)).To(MatchError(errStopped))
}

// Rooms of two apps with the same RoomId are counted apart, each written through its
// own app's store.
func TestRoomsOfTwoAppsKeptApart(t *testing.T) {
	g := NewWithT(t)
	stores := map[string]*fakeStore{"ns-a": newFakeStore(), "ns-b": newFakeStore()}
	var mu sync.Mutex
	apps := map[string]int64{}
	l, _, _ := startLaneOn(t, Config{WritesPerSecond: 1000, Interval: 10 * time.Millisecond}, func(namespace string, sdkAppID int64) Store {
		mu.Lock()
		defer mu.Unlock()
		apps[namespace] = sdkAppID
		return stores[namespace]
	})
	g.Expect(l.Add(Room{Namespace: "ns-a", SDKAppID: 1, ID: "same"}, 2, 1)).To(Succeed())
	g.Expect(l.Add(Room{Namespace: "ns-b", SDKAppID: 2, ID: "same"}, 5, 1)).To(Succeed())
	g.Eventually(func() int64 { return stores["ns-b"].online("same") }, 5*time.Second).Should(Equal(int64(5)))
	g.Eventually(func() int64 { return stores["ns-a"].online("same") }, 5*time.Second).Should(Equal(int64(2)))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(apps).To(Equal(map[string]int64{"ns-a": 1, "ns-b": 2}))
}
