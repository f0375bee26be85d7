package lanes

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrOverloaded says a callback would not get through the gate and be stored before its
// deadline: it is refused at once rather than at the deadline.
var ErrOverloaded = errors.New("too many room changes waiting to be stored; retry")

// Gate bounds the writes in flight on a lane and keeps the waiters honest about their
// deadlines: one that could not get a slot and finish its write in time is refused
// straight away, so under overload callbacks are answered in milliseconds, not at the
// timeout, and the slots go to those that can still make it.
type Gate struct {
	slots   chan struct{}
	waiting atomic.Int64
	// serviceNanos is a moving average of how long a slot is held.
	serviceNanos atomic.Int64
	waitTime     prometheus.Observer
}

// NewGate lets size writes in flight at once; waitTime, if set, observes the time spent
// waiting for a slot.
func NewGate(size int, waitTime prometheus.Observer) *Gate {
	g := &Gate{slots: make(chan struct{}, max(size, 1)), waitTime: waitTime}
	g.serviceNanos.Store(int64(10 * time.Millisecond))
	return g
}

// Enter takes a slot, or fails at once with ErrOverloaded when the wait would outlast
// ctx's deadline, or with ctx's error when it ends while waiting. release frees the slot.
func (g *Gate) Enter(ctx context.Context) (release func(), err error) {
	start := time.Now()
	if deadline, ok := ctx.Deadline(); ok && start.Add(g.expected()).After(deadline) {
		return nil, ErrOverloaded
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	entered := time.Now()
	if g.waitTime != nil {
		g.waitTime.Observe(entered.Sub(start).Seconds())
	}
	return func() {
		<-g.slots
		g.observe(time.Since(entered))
	}, nil
}

// expected is the time a newcomer would need: its turn behind those waiting, then its
// own write.
func (g *Gate) expected() time.Duration {
	service := time.Duration(g.serviceNanos.Load())
	rounds := math.Ceil(float64(g.waiting.Load()+1) / float64(cap(g.slots)))
	if len(g.slots) < cap(g.slots) && g.waiting.Load() == 0 {
		rounds = 1 // a free slot: only its own write
	}
	return time.Duration(rounds) * service
}

// observe folds one slot's holding time into the average (weight 1/8).
func (g *Gate) observe(d time.Duration) {
	for {
		old := g.serviceNanos.Load()
		next := old + (int64(d)-old)/8
		if g.serviceNanos.CompareAndSwap(old, next) {
			return
		}
	}
}
