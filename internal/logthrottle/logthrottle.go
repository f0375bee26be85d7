// Package logthrottle bounds how many lines a repeated log message writes, so that a
// flood of bad requests or a failing dependency is never silent but cannot flood the log.
package logthrottle

import (
	"sync"
	"time"
)

// Throttle lets the first Burst lines of every Interval through and holds back the
// others. Each held-back line is reported exactly once: through the summary function when
// one is set (called once at the end of every interval that held lines back), otherwise
// as the count that Allow returns with the next line it lets through.
type Throttle struct {
	burst    int
	interval time.Duration
	summary  func(suppressed int64)
	now      func() time.Time

	mu          sync.Mutex
	windowStart time.Time
	inWindow    int
	suppressed  int64
	total       int64
}

// New returns a throttle of burst lines per interval; burst is at least 1.
func New(burst int, interval time.Duration) *Throttle {
	return &Throttle{burst: max(burst, 1), interval: interval, now: time.Now}
}

// WithSummary makes the throttle call summary, from a timer, at the end of every interval
// in which it held lines back, with their number. It returns t.
func (t *Throttle) WithSummary(summary func(suppressed int64)) *Throttle {
	t.summary = summary
	return t
}

// Allow reports whether to log a line now. Without a summary function, suppressed is the
// number of lines held back since the last one let through.
func (t *Throttle) Allow() (suppressed int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	now := t.now()
	if t.windowStart.IsZero() || now.Sub(t.windowStart) >= t.interval {
		t.windowStart, t.inWindow = now, 0
	}
	if t.inWindow < t.burst {
		t.inWindow++
		if t.summary != nil {
			return 0, true
		}
		suppressed, t.suppressed = t.suppressed, 0
		return suppressed, true
	}
	t.suppressed++
	if t.summary != nil && t.suppressed == 1 {
		time.AfterFunc(t.windowStart.Add(t.interval).Sub(now), t.flush)
	}
	return 0, false
}

// Total is the number of lines asked for, let through or not.
func (t *Throttle) Total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

func (t *Throttle) flush() {
	t.mu.Lock()
	n := t.suppressed
	t.suppressed = 0
	t.mu.Unlock()
	if n > 0 {
		t.summary(n)
	}
}
