package roomstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyedMutexWaitersHonourTheirDeadline(t *testing.T) {
	var k keyedMutex
	unlock, err := k.lock(context.Background(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	// Waiters whose deadline passes give up at their deadline, not when the holder ends.
	var late atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			start := time.Now()
			if _, err := k.lock(ctx, "hot"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("lock of a held key: %v", err)
			}
			if time.Since(start) > time.Second {
				late.Add(1)
			}
		})
	}
	// Another key is not held up.
	other, err := k.lock(context.Background(), "cold")
	if err != nil {
		t.Fatal(err)
	}
	other()
	wg.Wait()
	if late.Load() > 0 {
		t.Fatalf("%d waiters stayed past their deadline", late.Load())
	}
	unlock()
	// The given-up waiters left no trace: the key is free and forgotten once unlocked.
	again, err := k.lock(context.Background(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if n := len(k.locks); n != 0 {
		t.Fatalf("%d keys remembered after every holder left", n)
	}
}

func TestKeyedMutexSerialises(t *testing.T) {
	var k keyedMutex
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			unlock, err := k.lock(context.Background(), "room")
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			if n > maxInside.Load() {
				maxInside.Store(n)
			}
			time.Sleep(time.Microsecond)
			inside.Add(-1)
			unlock()
		})
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Fatalf("%d holders at once", maxInside.Load())
	}
}
