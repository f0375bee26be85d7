package forward

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"time"
)

// delivery is one after-event callback on its way to the backend.
type delivery struct {
	rawQuery string
	body     []byte
	size     int64 // bytes counted against QueueBytes: body and query
	enqueued time.Time
	attempts int
	due      time.Time   // next retry; guarded by retryMu while waiting
	timer    *time.Timer // pending retry; guarded by retryMu
}

var (
	errQueueFull = errors.New("forward queue is full")
	errStopped   = errors.New("forwarder has stopped")
)

// Enqueue hands an after-event callback to the delivery workers without waiting. It
// returns false, and counts the drop, when the held deliveries (pending retries
// included) would exceed QueueSize or QueueBytes, or the forwarder has stopped. The
// forwarder keeps body: the caller must not modify it afterwards.
func (f *Forwarder) Enqueue(rawQuery string, body []byte) bool {
	f.acceptMu.RLock()
	defer f.acceptMu.RUnlock()
	if f.stopped {
		f.series.dropped[DropShutdown].Inc()
		if n, ok := f.stoppedLog.allow(); ok {
			f.cfg.Log.Error(errStopped, "after-event callback not forwarded", "command", command(rawQuery), "suppressed", n)
		}
		return false
	}
	// Counting before sending keeps the channel from ever holding more than its
	// capacity, so neither this send nor a retry's can block.
	if f.pending.Add(1) > int64(f.cfg.QueueSize) {
		f.pending.Add(-1)
		f.overflow(rawQuery, "items")
		return false
	}
	size := int64(len(rawQuery) + len(body))
	if !f.reserve(size) {
		f.pending.Add(-1)
		f.overflow(rawQuery, "bytes")
		return false
	}
	f.queue <- &delivery{rawQuery: rawQuery, body: body, size: size, enqueued: time.Now()}
	return true
}

// reserve counts size more bytes as held unless that would pass QueueBytes.
func (f *Forwarder) reserve(size int64) bool {
	for {
		held := f.held.Load()
		if held+size > f.cfg.QueueBytes {
			return false
		}
		if f.held.CompareAndSwap(held, held+size) {
			return true
		}
	}
}

func (f *Forwarder) overflow(rawQuery, bound string) {
	f.series.dropped[DropOverflow].Inc()
	if _, ok := f.overflowLog.allow(); ok {
		f.cfg.Log.Error(errQueueFull, "after-event callback dropped", "command", command(rawQuery), "full", bound,
			"queueSize", f.cfg.QueueSize, "queueBytes", f.cfg.QueueBytes, "droppedTotal", f.overflowLog.total.Load())
	}
}

func (f *Forwarder) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-f.queue:
			if ctx.Err() != nil {
				return // still counted in pending: Start drops it as shutdown
			}
			f.deliver(ctx, d)
		}
	}
}

// deliver makes one attempt. Any 2xx delivers; network errors, timeouts, 5xx and 429 are
// retried; any other status is the backend refusing the callback and is not retried.
func (f *Forwarder) deliver(ctx context.Context, d *delivery) {
	d.attempts++
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	status, err := f.post(actx, d.rawQuery, d.body)
	o := classify(actx, status, err)
	cancel()
	if err != nil && ctx.Err() != nil {
		return // stopped mid-attempt: Start drops it as shutdown
	}
	f.observe(async, o, start)
	switch o {
	case outcomeOK:
		f.finish(d, "")
	case outcomeRejected:
		f.finish(d, DropRejected)
		if n, ok := f.rejectLog.allow(); ok {
			f.cfg.Log.Info("app backend rejected an after-event callback, not retrying",
				"command", command(d.rawQuery), "status", status, "suppressed", n)
		}
	default:
		f.retryLater(d, o, status, err)
	}
}

// post sends one attempt and returns the response status.
func (f *Forwarder) post(ctx context.Context, rawQuery string, body []byte) (int, error) {
	resp, err := f.client.Do(f.newRequest(ctx, rawQuery, body))
	if err != nil {
		return 0, err
	}
	// Read the answer to the end so the connection is reused. The status alone decides:
	// a backend that answered 2xx has the callback even if the body read fails.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (f *Forwarder) retryLater(d *delivery, o outcome, status int, err error) {
	delay := backoff(d.attempts, f.cfg.BaseBackoff, f.cfg.MaxBackoff)
	if d.attempts >= f.cfg.MaxAttempts || time.Since(d.enqueued)+delay > f.cfg.MaxAge {
		f.finish(d, DropGaveUp)
		if n, ok := f.gaveUpLog.allow(); ok {
			f.cfg.Log.Error(err, "gave up forwarding an after-event callback",
				"command", command(d.rawQuery), "attempts", d.attempts, "age", time.Since(d.enqueued).Round(time.Millisecond),
				"outcome", outcomes[o], "status", status, "suppressed", n)
		}
		return
	}
	f.schedule(d, delay)
}

// backoff draws the delay before the retry that follows attempt n (n ≥ 1) uniformly from
// [0, min(maxDelay, base·2^(n-1))). Full jitter spreads the retries of a burst that failed
// together.
func backoff(n int, base, maxDelay time.Duration) time.Duration {
	ceiling := maxDelay
	if k := n - 1; k < 62 && base <= maxDelay>>k {
		ceiling = base << k
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

// schedule puts d back on the queue after delay. The delivery waits on a timer rather
// than in a worker, so a backend outage does not stall the other deliveries.
func (f *Forwarder) schedule(d *delivery, delay time.Duration) {
	f.retryMu.Lock()
	defer f.retryMu.Unlock()
	d.due = time.Now().Add(delay)
	if !f.drainBy.IsZero() && d.due.After(f.drainBy) {
		f.finish(d, DropShutdown)
		return
	}
	f.waiting[d] = struct{}{}
	d.timer = time.AfterFunc(delay, func() { f.fire(d) })
}

func (f *Forwarder) fire(d *delivery) {
	f.retryMu.Lock()
	_, ok := f.waiting[d]
	delete(f.waiting, d)
	f.retryMu.Unlock()
	if ok {
		f.queue <- d // never blocks: d is already counted in pending
	}
}

// finish releases a delivery's place and bytes in the queue, counting it as dropped when
// reason is set.
func (f *Forwarder) finish(d *delivery, reason string) {
	if reason != "" {
		f.series.dropped[reason].Inc()
	}
	f.held.Add(-d.size)
	if f.pending.Add(-1) == 0 {
		select {
		case f.idle <- struct{}{}:
		default:
		}
	}
}
