package roomstore

import (
	"context"
	"sync"
)

// keyedMutex serialises work per key and forgets keys nobody holds, so memory follows
// the number of rooms being written, not the number ever seen. Waiting honours the
// waiter's context: a callback past its deadline stops waiting at once, instead of
// queueing behind a hot room and holding up the callbacks after it.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refMutex
}

type refMutex struct {
	held chan struct{} // holds a value while the key is locked
	refs int
}

// lock locks key and returns its unlock, or ctx's error when ctx ends first.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*refMutex{}
	}
	m := k.locks[key]
	if m == nil {
		m = &refMutex{held: make(chan struct{}, 1)}
		k.locks[key] = m
	}
	m.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case m.held <- struct{}{}:
		return func() { <-m.held; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
