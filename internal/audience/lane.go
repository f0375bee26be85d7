// Package audience keeps rooms' online counts as soft state. Member enter/leave callbacks
// are by far the most frequent ones Tencent sends; each is acknowledged as soon as it is
// added to an in-memory aggregate, and a writer stores the aggregate in the LiveRooms
// under one global write budget: rooms whose stored count is stalest first, each room at
// most once per interval. So no amount of audience churn queues a room's creation behind
// it, and the API server sees a bounded write rate however busy the app is.
//
// The trade: a replica that dies loses the deltas it had not written yet (a graceful stop
// writes them). That is right for counts, which the next member events and the room's end
// correct and which nothing acts on, and wrong for rooms, whose creation starts recordings:
// room lifecycle callbacks are stored before they are acknowledged.
package audience

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
)

// Store writes room mutations; *roomstore.Store is the real one.
type Store interface {
	Mutate(ctx context.Context, roomID, origin string, m roomstate.Mutation) (roomstore.Result, error)
}

// Stores gives the store of an app's rooms, by the app's namespace and SDKAppID (e.g.
// roomstore.Store.ForApp).
type Stores func(namespace string, sdkAppID int64) Store

// Room names a room of an app: the app's namespace holds it, and a room first heard of
// through a member callback is created with the app's SDKAppID.
type Room struct {
	Namespace string
	SDKAppID  int64
	ID        string
}

// key identifies a room across apps: a RoomId is unique within its app only.
func (r Room) key() string { return r.Namespace + "/" + r.ID }

// Config configures a Lane. Zero values take the defaults noted.
type Config struct {
	// WritesPerSecond is the budget of count writes, all rooms together (default 20).
	WritesPerSecond float64
	// Interval is the least time between two count writes of one room (default 1s). When
	// the budget is short, rooms wait longer: with n rooms waiting, n/WritesPerSecond.
	Interval time.Duration
	// Workers bounds the writes in flight (default 4).
	Workers int
	// WriteTimeout bounds one write (default 10s).
	WriteTimeout time.Duration
	// DrainTimeout bounds the writing of what is left at shutdown (default 10s).
	DrainTimeout time.Duration
	// Replica names this process in the rooms' write marks (e.g. the pod name).
	Replica string
	Metrics *Metrics
	Log     logr.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Lane aggregates member-count deltas per room and writes them under the budget.
type Lane struct {
	cfg     Config
	stores  Stores
	limiter *rate.Limiter

	// dispatching is held by the worker taking the next room and its budget token.
	dispatching sync.Mutex

	mu      sync.Mutex
	rooms   map[string]*room
	queue   dueQueue // rooms with a delta to write and none in flight
	wake    chan struct{}
	seq     int64
	stopped bool
}

// room is one room's unwritten delta.
type room struct {
	ref    Room
	delta  int64     // acknowledged and not written
	newest int64     // newest event time in delta, Unix milliseconds
	since  time.Time // when the oldest unwritten delta arrived; zero when delta is empty
	// lastWrite is when the room's last write started; the next waits Interval after it.
	lastWrite time.Time
	// current is the write in flight, or one that failed and must be made again, with its
	// mark, before any other write of the room: it may have been stored, and its mark
	// lets the store tell.
	current  *write
	inflight bool
	due      time.Time // when the room may be written next, while queued
	index    int       // position in the queue, -1 when not queued
}

// write is one write of a room's delta.
type write struct {
	ref           Room
	delta, newest int64
	since         time.Time
	mark          livev1.CountWrite
}

// New builds a lane writing each room through its app's store.
func New(cfg Config, stores Stores) *Lane {
	if cfg.WritesPerSecond <= 0 {
		cfg.WritesPerSecond = 20
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	l := &Lane{
		cfg:     cfg,
		stores:  stores,
		limiter: rate.NewLimiter(rate.Limit(cfg.WritesPerSecond), 1),
		rooms:   map[string]*room{},
		wake:    make(chan struct{}, 1),
	}
	// Sequence numbers keep growing across restarts of a replica with the same name.
	l.seq = cfg.Now().UnixNano()
	cfg.Metrics.observe(l)
	return l
}

// errStopped says the lane no longer takes deltas: the process is shutting down.
var errStopped = errors.New("the count lane has stopped")

// Add adds an acknowledged member-count change of a room. It never waits for a write.
func (l *Lane) Add(ref Room, delta, eventMillis int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return errStopped
	}
	key := ref.key()
	r := l.rooms[key]
	if r == nil {
		r = &room{ref: ref, index: -1}
		l.rooms[key] = r
	}
	// The app serving a namespace may be replaced; later deltas go to the newest one's.
	r.ref.SDKAppID = ref.SDKAppID
	if r.since.IsZero() {
		r.since = l.cfg.Now()
	}
	r.delta += delta
	r.newest = max(r.newest, eventMillis)
	l.cfg.Metrics.Deltas.Inc()
	l.enqueue(r)
	return nil
}

// NeedLeaderElection is false: every callback-server replica writes its own deltas.
func (l *Lane) NeedLeaderElection() bool { return false }

// Start writes until ctx ends, then writes what is left within DrainTimeout, above the
// budget if need be: a rolling update should not lose counts.
func (l *Lane) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range l.cfg.Workers {
		wg.Go(func() { l.work(ctx, l.limiter) })
	}
	wg.Wait()

	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.DrainTimeout)
	defer cancel()
	drain := rate.NewLimiter(rate.Limit(max(5*l.cfg.WritesPerSecond, 100)), l.cfg.Workers)
	for range l.cfg.Workers {
		wg.Go(func() { l.work(drainCtx, drain) })
	}
	wg.Wait()
	if lost := l.unwritten(); lost > 0 {
		l.cfg.Metrics.Lost.Add(float64(lost))
		l.cfg.Log.Info("Stopped with member counts unwritten", "rooms", lost)
	}
	return nil
}

// work writes due rooms, one budget token per write, until ctx ends or, when draining,
// nothing is left.
func (l *Lane) work(ctx context.Context, limiter *rate.Limiter) {
	draining := l.isStopped()
	for {
		r, w, err := l.dispatch(ctx, limiter, draining)
		if r == nil {
			return
		}
		if err != nil {
			l.settle(r, w, false, err)
			return
		}
		stored, err := l.write(ctx, w)
		l.settle(r, w, stored, err)
	}
}

// dispatch takes the room that has been due longest and a budget token for its write.
// One worker at a time does both, so tokens go to rooms in the order they became due:
// with the budget short, the stalest room is written first. r is nil when there is
// nothing more to do; err, with r set, when ctx ended while r waited for its token.
func (l *Lane) dispatch(ctx context.Context, limiter *rate.Limiter, draining bool) (r *room, w *write, err error) {
	l.dispatching.Lock()
	defer l.dispatching.Unlock()
	if r, w = l.next(ctx, draining); r == nil {
		return nil, nil, nil
	}
	return r, w, limiter.Wait(ctx)
}

// next takes the room that has been due longest and starts its write. It waits until a
// room is due, or returns nil when ctx ends (or, when draining, when nothing is left).
func (l *Lane) next(ctx context.Context, draining bool) (*room, *write) {
	for {
		l.mu.Lock()
		now := l.cfg.Now()
		wait := time.Duration(-1)
		if len(l.queue) > 0 {
			r := l.queue[0]
			if draining || !r.due.After(now) {
				heap.Pop(&l.queue)
				w := l.begin(r, now)
				l.mu.Unlock()
				return r, w
			}
			wait = r.due.Sub(now)
		}
		l.mu.Unlock()
		if draining && wait < 0 {
			return nil, nil
		}
		if !l.sleep(ctx, wait) {
			return nil, nil
		}
	}
}

// sleep waits for d (forever when negative) or a wake-up; false when ctx ended.
func (l *Lane) sleep(ctx context.Context, d time.Duration) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-l.wake:
	case <-timer:
	}
	return true
}

// begin starts the room's next write: the one it owes, else its delta; the caller
// holds mu.
func (l *Lane) begin(r *room, now time.Time) *write {
	r.inflight, r.lastWrite = true, now
	if r.current != nil {
		return r.current
	}
	l.seq++
	r.current = &write{
		ref:   r.ref,
		delta: r.delta, newest: r.newest, since: r.since,
		mark: livev1.CountWrite{Replica: l.cfg.Replica, Sequence: l.seq, Time: metav1.NewTime(now)},
	}
	r.delta, r.newest, r.since = 0, 0, time.Time{}
	return r.current
}

// write stores w. A write made again after a failure carries the same mark, so a store
// that kept the first attempt leaves the room as it is: no delta counts twice.
func (l *Lane) write(ctx context.Context, w *write) (bool, error) {
	if w.delta == 0 {
		return true, nil // enters and leaves that cancel out: nothing to store
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.WriteTimeout)
	defer cancel()
	store := l.stores(w.ref.Namespace, w.ref.SDKAppID)
	_, err := store.Mutate(ctx, w.ref.ID, livev1.OriginCallback, roomstate.Members(w.delta, w.newest, w.mark))
	return err == nil, err
}

// settle ends a write: a stored one is done; a failed one stays owed and is made again
// after the room's interval, what arrived meanwhile waiting behind it.
func (l *Lane) settle(r *room, w *write, stored bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.inflight = false
	if stored {
		r.current = nil
		l.cfg.Metrics.Writes.Inc()
		l.cfg.Metrics.Staleness.Observe(l.cfg.Now().Sub(w.since).Seconds())
	} else {
		l.cfg.Metrics.Failures.Inc()
		if err != nil {
			l.cfg.Log.V(1).Info("Count write failed; retrying", "namespace", r.ref.Namespace, "roomId", r.ref.ID, "error", err.Error())
		}
	}
	if !l.enqueue(r) {
		l.forgetLater(r)
	}
}

// forgetLater drops an idle room once its interval has passed: until then it is kept, so
// that a delta arriving just after a write waits its turn.
func (l *Lane) forgetLater(r *room) {
	time.AfterFunc(l.cfg.Interval, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		idle := r.current == nil && r.since.IsZero() && !r.inflight
		if key := r.ref.key(); l.rooms[key] == r && idle && l.cfg.Now().Sub(r.lastWrite) >= l.cfg.Interval {
			delete(l.rooms, key)
		}
	})
}

// enqueue queues r when it has something to write and is not being written, and reports
// whether r has anything to write or is being written; the caller holds mu.
func (l *Lane) enqueue(r *room) bool {
	pending := r.current != nil || !r.since.IsZero()
	if !pending || r.inflight {
		return pending
	}
	since := r.since
	if r.current != nil {
		since = r.current.since
	}
	r.due = later(since, r.lastWrite.Add(l.cfg.Interval))
	if r.index >= 0 {
		heap.Fix(&l.queue, r.index)
	} else {
		heap.Push(&l.queue, r)
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (l *Lane) isStopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

// unwritten counts the rooms with deltas not known to be stored.
func (l *Lane) unwritten() int {
	rooms, _ := l.Backlog()
	return rooms
}

// Backlog reports the rooms whose counts are not written yet and how long the oldest
// unwritten delta has waited.
func (l *Lane) Backlog() (rooms int, oldest time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	for _, r := range l.rooms {
		since := r.since
		if r.current != nil {
			since = r.current.since
		}
		if since.IsZero() {
			continue
		}
		rooms++
		oldest = max(oldest, now.Sub(since))
	}
	return rooms, oldest
}

// dueQueue orders rooms by when they became due: the longest overdue first, which under
// a short budget is the room whose stored count is stalest.
type dueQueue []*room

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *dueQueue) Push(x any) {
	r := x.(*room)
	r.index = len(*q)
	*q = append(*q, r)
}
func (q *dueQueue) Pop() any {
	old := *q
	r := old[len(old)-1]
	old[len(old)-1] = nil
	r.index = -1
	*q = old[:len(old)-1]
	return r
}
