package webhookserver

import (
	"context"
	"errors"
	"sync"
	"time"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
)

// roomWriter stores room mutations; *roomstore.Store is the real one.
type roomWriter interface {
	Mutate(ctx context.Context, roomID, origin string, m roomstate.Mutation) (roomstore.Result, error)
}

// memberBatcher coalesces member-state callbacks: per room, at most one write per
// interval carries the net change of every callback received meanwhile. Each callback
// is answered only after the write that carries it is stored, so nothing acknowledged is
// lost and a failed write fails every callback it carried.
type memberBatcher struct {
	store    roomWriter
	interval time.Duration
	timeout  time.Duration // of one write

	mu    sync.Mutex
	rooms map[string]*memberRoom
}

type memberRoom struct {
	pending     *memberBatch
	flushing    bool
	scheduled   bool
	nextAllowed time.Time
}

type memberBatch struct {
	delta   int64
	newest  int64
	waiters int
	done    chan struct{}
	err     error
	started bool
}

func newMemberBatcher(store roomWriter, interval, timeout time.Duration) *memberBatcher {
	return &memberBatcher{store: store, interval: interval, timeout: timeout, rooms: map[string]*memberRoom{}}
}

var errWithdrawn = errors.New("member-state change withdrawn before it was written")

// submit adds one callback's change to the room's next write and waits for that write.
// If ctx ends before the write starts, the change is withdrawn, so the failed callback
// leaves no trace and a retry of it counts once.
func (b *memberBatcher) submit(ctx context.Context, roomID string, delta, eventMillis int64) (roomstate.Outcome, error) {
	b.mu.Lock()
	r := b.rooms[roomID]
	if r == nil {
		r = &memberRoom{}
		b.rooms[roomID] = r
	}
	if r.pending == nil {
		r.pending = &memberBatch{done: make(chan struct{})}
	}
	batch := r.pending
	batch.delta += delta
	batch.newest = max(batch.newest, eventMillis)
	batch.waiters++
	b.schedule(roomID, r)
	b.mu.Unlock()

	select {
	case <-batch.done:
		if batch.err != nil {
			return "", batch.err
		}
		return roomstate.Updated, nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		if !batch.started {
			batch.delta -= delta
			batch.waiters--
			return "", errors.Join(errWithdrawn, ctx.Err())
		}
		return "", ctx.Err()
	}
}

// schedule arranges the room's next write; the caller holds mu.
func (b *memberBatcher) schedule(roomID string, r *memberRoom) {
	if r.scheduled || r.flushing || r.pending == nil {
		return
	}
	r.scheduled = true
	time.AfterFunc(time.Until(r.nextAllowed), func() { b.flush(roomID) })
}

func (b *memberBatcher) flush(roomID string) {
	b.mu.Lock()
	r := b.rooms[roomID]
	batch := r.pending
	r.pending, r.scheduled, r.flushing = nil, false, true
	r.nextAllowed = time.Now().Add(b.interval)
	batch.started = true
	b.mu.Unlock()

	if batch.waiters > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		_, batch.err = b.store.Mutate(ctx, roomID, livev1.OriginCallback, roomstate.Members(batch.delta, batch.newest, livev1.CountWrite{}))
		cancel()
	}
	close(batch.done)

	b.mu.Lock()
	defer b.mu.Unlock()
	r.flushing = false
	if r.pending != nil {
		b.schedule(roomID, r)
		return
	}
	// Keep the room's rate limit until it lapses, then forget the room.
	time.AfterFunc(b.interval, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if r.pending == nil && !r.flushing && !r.scheduled && b.rooms[roomID] == r {
			delete(b.rooms, roomID)
		}
	})
}
