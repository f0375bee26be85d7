package forward

import (
	"sync/atomic"
	"time"
)

// throttle lets one log line through per second and counts the others, so a failing
// backend is never silent but cannot flood the log.
type throttle struct {
	last       atomic.Int64 // unix nanoseconds of the last line let through
	suppressed atomic.Int64
	total      atomic.Int64
}

const throttleEvery = time.Second

// allow reports whether to log now and, if so, how many lines were held back since the
// last one.
func (t *throttle) allow() (suppressed int64, ok bool) {
	t.total.Add(1)
	now := time.Now().UnixNano()
	last := t.last.Load()
	if (last != 0 && now-last < int64(throttleEvery)) || !t.last.CompareAndSwap(last, now) {
		t.suppressed.Add(1)
		return 0, false
	}
	return t.suppressed.Swap(0), true
}
