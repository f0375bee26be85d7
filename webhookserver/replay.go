package webhookserver

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// replayKey identifies one delivery to one app: Sign only depends on the token and the
// second, so the body's hash tells apart distinct callbacks of the same second.
type replayKey [sha256.Size]byte

// newReplayKey keys a delivery on its app and on what it means rather than how it is
// spelled, so that a replay cannot pass as new: Sign by its bytes (hex in either case),
// RequestTime by its value (leading zeros or a sign), the body without insignificant JSON
// whitespace.
func newReplayKey(sdkAppID int64, sign, requestTime string, body []byte) replayKey {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(sdkAppID)))
	if b, err := hex.DecodeString(sign); err == nil {
		h.Write([]byte{'x'})
		h.Write(b)
	} else {
		h.Write([]byte{'s'})
		h.Write([]byte(sign))
	}
	h.Write([]byte{0})
	if sec, err := strconv.ParseInt(requestTime, 10, 64); err == nil {
		h.Write([]byte{'t'})
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(sec)))
	} else {
		h.Write([]byte{'s'})
		h.Write([]byte(requestTime))
	}
	h.Write([]byte{0})
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil {
		body = compact.Bytes()
	}
	bodySum := sha256.Sum256(body)
	h.Write(bodySum[:])
	var k replayKey
	copy(k[:], h.Sum(nil))
	return k
}

// replayCache remembers deliveries that were applied, for as long as their RequestTime
// is accepted (each for its own time to live: twice its app's accepted skew), so a replay
// is acknowledged without being applied again. A delivery in progress makes an identical
// one wait for its result; a failed one is forgotten, so a retry is processed. One cache
// serves every app, so its bound holds whatever the number of apps.
type replayCache struct {
	max int

	mu      sync.Mutex
	entries map[replayKey]*replayEntry
	order   *list.List // applied keys, oldest first
}

type replayEntry struct {
	ttl      time.Duration
	done     chan struct{} // closed when the first delivery finished
	finished bool
	applied  bool
	expires  time.Time
	elem     *list.Element
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, entries: map[replayKey]*replayEntry{}, order: list.New()}
}

// begin claims key, to be remembered for ttl once applied. It returns duplicate=true when
// an identical delivery was applied; otherwise the caller processes the delivery and must
// call finish with its outcome, on every path: identical deliveries wait until it does.
// Calls after the first are ignored, so a deferred finish(false) can back up the one that
// reports the outcome.
func (c *replayCache) begin(key replayKey, now time.Time, ttl time.Duration) (duplicate bool, finish func(applied bool)) {
	for {
		c.mu.Lock()
		c.expire(now)
		e, ok := c.entries[key]
		if !ok {
			e = &replayEntry{ttl: ttl, done: make(chan struct{})}
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
	if e.finished {
		return
	}
	e.finished = true
	if applied {
		e.applied = true
		e.expires = time.Now().Add(e.ttl)
		e.elem = c.order.PushBack(key)
		for c.order.Len() > c.max {
			delete(c.entries, c.order.Remove(c.order.Front()).(replayKey))
		}
	} else {
		delete(c.entries, key)
	}
	close(e.done)
}

// expire drops applied entries past their window, oldest first (an entry of an app with a
// longer window holds back the ones after it, within max); the caller holds mu.
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
