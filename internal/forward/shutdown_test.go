package forward

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestShutdownDrainsQueue(t *testing.T) {
	b := newBackend(t, func(n int, w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		answerOK(n, w, r)
	})
	f := newForwarder(t, Config{URL: b.URL, Workers: 2})
	stop := start(t, f)
	for range 20 {
		if !f.Enqueue(tencentQuery, []byte(`{}`)) {
			t.Fatal("Enqueue refused a callback")
		}
	}
	stop()
	if n := len(b.requests()); n != 20 {
		t.Errorf("backend got %d callbacks before shutdown finished, want 20", n)
	}
	if n := dropped(f, DropShutdown); n != 0 {
		t.Errorf("dropped{shutdown} = %d, want 0", n)
	}
	if f.Enqueue(tencentQuery, []byte(`{}`)) {
		t.Error("Enqueue accepted a callback after shutdown")
	}
	if n := dropped(f, DropShutdown); n != 1 {
		t.Errorf("dropped{shutdown} = %d after a late Enqueue, want 1", n)
	}
}

func TestShutdownDeliversDueRetries(t *testing.T) {
	b := newBackend(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		answerOK(n, w, r)
	})
	f := newForwarder(t, Config{URL: b.URL, BaseBackoff: 50 * time.Millisecond, DrainTimeout: 5 * time.Second})
	stop := start(t, f)
	f.Enqueue(tencentQuery, []byte(`{}`))
	eventually(t, 5*time.Second, "the first attempt", func() bool { return requests(f, KindAsync, OutcomeError) == 1 })
	stop()
	if n := requests(f, KindAsync, OutcomeOK); n != 1 {
		t.Errorf("retry delivered %d times during the drain, want 1", n)
	}
	if n := dropped(f, DropShutdown); n != 0 {
		t.Errorf("dropped{shutdown} = %d, want 0", n)
	}
}

func TestShutdownDropsLateRetries(t *testing.T) {
	b := newBackend(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	f := newForwarder(t, Config{URL: b.URL, BaseBackoff: time.Hour, MaxBackoff: time.Hour, MaxAge: 2 * time.Hour, DrainTimeout: 5 * time.Second})
	stop := start(t, f)
	f.Enqueue(tencentQuery, []byte(`{}`))
	eventually(t, 5*time.Second, "a retry to be scheduled", func() bool {
		f.retryMu.Lock()
		defer f.retryMu.Unlock()
		return len(f.waiting) == 1
	})
	began := time.Now()
	stop()
	// A retry drawn below the drain window would be attempted and fail again, then
	// dropped as a late retry; either way it ends as shutdown.
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("shutdown took %v waiting for a retry due after the drain window", took)
	}
	if n := dropped(f, DropShutdown); n != 1 {
		t.Errorf("dropped{shutdown} = %d, want 1", n)
	}
}

func TestShutdownDropsWhatIsLeft(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	b := newBackend(t, hang(release))
	const drain = 200 * time.Millisecond
	f := newForwarder(t, Config{URL: b.URL, Workers: 1, Timeout: 10 * time.Second, DrainTimeout: drain})
	stop := start(t, f)
	for range 5 {
		f.Enqueue(tencentQuery, []byte(`{}`))
	}
	eventually(t, 5*time.Second, "the first attempt to reach the backend", func() bool { return len(b.requests()) == 1 })
	began := time.Now()
	stop()
	if took := time.Since(began); took > drain+time.Second {
		t.Errorf("shutdown took %v with a %v drain window", took, drain)
	}
	if n := dropped(f, DropShutdown); n != 5 {
		t.Errorf("dropped{shutdown} = %d, want 5", n)
	}
	if v := testutil.ToFloat64(f.Metrics().QueueDepth); v != 0 {
		t.Errorf("queue depth = %v after shutdown, want 0", v)
	}
	if held := queueBytes(f); held != 0 {
		t.Errorf("queue bytes = %d after shutdown, want 0", held)
	}
}

func TestStartTwice(t *testing.T) {
	f := newForwarder(t, Config{URL: "http://backend.invalid/cb"})
	start(t, f)
	eventually(t, time.Second, "Start to run", f.started.Load)
	if err := f.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded")
	}
	if f.NeedLeaderElection() {
		t.Error("NeedLeaderElection = true, want every replica to forward")
	}
}
