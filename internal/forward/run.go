package forward

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Start delivers after-event callbacks until ctx is done. Then it stops accepting new
// ones, delivers what is held (retries included) for up to DrainTimeout, counts the rest
// as dropped and returns. It is a controller-runtime Runnable.
func (f *Forwarder) Start(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return errors.New("forwarder already started")
	}
	// Attempts in flight must outlive ctx so the drain can finish them.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup
	for range f.cfg.Workers {
		wg.Go(func() { f.work(workCtx) })
	}
	f.cfg.Log.Info("forwarding callbacks", "workers", f.cfg.Workers, "queueSize", f.cfg.QueueSize, "queueBytes", f.cfg.QueueBytes, "failPolicy", f.cfg.FailPolicy)

	<-ctx.Done()
	f.acceptMu.Lock()
	f.stopped = true
	f.acceptMu.Unlock()
	deadline := time.Now().Add(f.cfg.DrainTimeout)
	f.dropLateRetries(deadline)
	f.cfg.Log.Info("draining after-event callbacks", "held", f.pending.Load(), "timeout", f.cfg.DrainTimeout)
	f.waitIdle(deadline)

	stopWork()
	wg.Wait()
	if left := f.close(); left > 0 {
		f.cfg.Log.Error(errStopped, "after-event callbacks dropped at shutdown", "dropped", left)
	}
	return nil
}

// NeedLeaderElection is false: every replica receives callbacks and forwards its own.
func (f *Forwarder) NeedLeaderElection() bool { return false }

// dropLateRetries drops the retries that would not come due before deadline, so that
// the drain does not wait for them.
func (f *Forwarder) dropLateRetries(deadline time.Time) {
	var late []*delivery
	f.retryMu.Lock()
	f.drainBy = deadline
	for d := range f.waiting {
		if d.due.After(deadline) {
			d.timer.Stop()
			delete(f.waiting, d)
			late = append(late, d)
		}
	}
	f.retryMu.Unlock()
	for _, d := range late {
		f.finish(d, DropShutdown)
	}
}

func (f *Forwarder) waitIdle(deadline time.Time) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for f.pending.Load() > 0 {
		select {
		case <-f.idle:
		case <-t.C:
			return
		}
	}
}

// close runs once the workers have exited: it drops whatever is still held and returns
// how many that was.
func (f *Forwarder) close() int64 {
	f.retryMu.Lock()
	for d := range f.waiting {
		d.timer.Stop()
	}
	clear(f.waiting)
	f.retryMu.Unlock()
	for len(f.queue) > 0 {
		<-f.queue
	}
	// Attempts cut short by the stop were dropped by their workers without finishing;
	// with the workers gone, nothing is held any more.
	left := f.pending.Swap(0)
	f.held.Store(0)
	if left > 0 {
		f.series.dropped[DropShutdown].Add(float64(left))
	}
	return left
}
