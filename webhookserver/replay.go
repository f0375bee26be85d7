package webhookserver

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// replayKey identifies one delivery: Sign only depends on the token and the second, so
// the body's hash tells apart distinct callbacks of the same second.
type replayKey [sha256.Size]byte

func newReplayKey(sign, requestTime string, body []byte) replayKey {
	bodySum := sha256.Sum256(body)
	h := sha256.New()
	h.Write([]byte(sign))
	h.Write([]byte{0})
	h.Write([]byte(requestTime))
	h.Write([]byte{0})
	h.Write(bodySum[:])
	var k replayKey
	copy(k[:], h.Sum(nil))
	return k
}

// replayCache remembers deliveries that were applied, for as long as their RequestTime
// is accepted, so a replay is acknowledged without being applied again. A delivery in
// progress makes an identical one wait for its result; a failed one is forgotten, so a
// retry is processed.
type replayCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[replayKey]*replayEntry
	order   *list.List // applied keys, oldest first
}

type replayEntry struct {
	done    chan struct{} // closed when the first delivery finished
	applied bool
	expires time.Time
	elem    *list.Element
}

func newReplayCache(ttl time.Duration, max int) *replayCache {
	return &replayCache{ttl: ttl, max: max, entries: map[replayKey]*replayEntry{}, order: list.New()}
}

// begin claims key. It returns duplicate=true when an identical delivery was applied;
// otherwise the caller processes the delivery and must call finish with its outcome.
func (c *replayCache) begin(key replayKey, now time.Time) (duplicate bool, finish func(applied bool)) {
	for {
		c.mu.Lock()
		c.expire(now)
		e, ok := c.entries[key]
		if !ok {
			e = &replayEntry{done: make(chan struct{})}
			c.entries[key] = e
			c.mu.Unlock()
			return false, func(applied bool) { c.finish(key, e, applied) }
		}
		if e.applied {
			c.mu.Unlock()
			return true, nil
		}
		wait := e.done
		c.mu.Unlock()
		<-wait // an identical delivery is being applied; its outcome decides
	}
}

func (c *replayCache) finish(key replayKey, e *replayEntry, applied bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if applied {
		e.applied = true
		e.expires = time.Now().Add(c.ttl)
		e.elem = c.order.PushBack(key)
		for c.order.Len() > c.max {
			delete(c.entries, c.order.Remove(c.order.Front()).(replayKey))
		}
	} else {
		delete(c.entries, key)
	}
	close(e.done)
}

// expire drops applied entries past their window; the caller holds mu.
func (c *replayCache) expire(now time.Time) {
	for f := c.order.Front(); f != nil; f = c.order.Front() {
		k := f.Value.(replayKey)
		if e := c.entries[k]; e != nil && e.expires.After(now) {
			return
		}
		c.order.Remove(f)
		delete(c.entries, k)
	}
}
