package forward

import (
	"bytes"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func queueBytes(f *Forwarder) int64 { return int64(testutil.ToFloat64(f.Metrics().QueueBytes)) }

func TestEnqueueBoundedInBytes(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	b := newBackend(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		answerOK(n, w, r)
	})
	cfg := Config{URL: b.URL, MaxAttempts: 1 << 20, MaxAge: time.Hour, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	f := newForwarder(t, cfg)
	if f.cfg.QueueBytes != DefaultQueueBytes {
		t.Fatalf("QueueBytes = %d, want the default %d", f.cfg.QueueBytes, DefaultQueueBytes)
	}
	start(t, f)

	body := bytes.Repeat([]byte("x"), 60<<10) // shared: the forwarder only reads it
	size := int64(len(body) + len(tencentQuery))
	const sent = 2000
	accepted := 0
	for range sent {
		if f.Enqueue(tencentQuery, body) {
			accepted++
		}
		if held := queueBytes(f); held > DefaultQueueBytes {
			t.Fatalf("%d bytes held, more than the %d bound", held, DefaultQueueBytes)
		}
	}
	// Nothing is released while the backend is down, so the bound alone decides.
	if want := int(DefaultQueueBytes / size); accepted != want {
		t.Errorf("accepted %d callbacks of %d bytes, want %d", accepted, size, want)
	}
	if n := dropped(f, DropOverflow); n != sent-accepted {
		t.Errorf("dropped{overflow} = %d, want %d", n, sent-accepted)
	}
	if held := queueBytes(f); held != int64(accepted)*size {
		t.Errorf("queue bytes = %d, want %d", held, int64(accepted)*size)
	}
	eventually(t, 10*time.Second, "failed attempts", func() bool { return requests(f, KindAsync, OutcomeError) >= accepted })

	down.Store(false)
	eventually(t, 30*time.Second, "every accepted callback delivered", func() bool { return requests(f, KindAsync, OutcomeOK) == accepted })
	if held := queueBytes(f); held != 0 {
		t.Errorf("queue bytes = %d after delivering everything, want 0", held)
	}
	if depth := testutil.ToFloat64(f.Metrics().QueueDepth); depth != 0 {
		t.Errorf("queue depth = %v after delivering everything, want 0", depth)
	}
	if !f.Enqueue(tencentQuery, body) {
		t.Error("Enqueue refused a callback once the queue was empty")
	}
}

func TestQueueBytesReleasedHoweverADeliveryEnds(t *testing.T) {
	status := func(code int) func(int, http.ResponseWriter, *http.Request) {
		return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}
	tests := []struct {
		name   string
		answer func(int, http.ResponseWriter, *http.Request)
		edit   func(*Config)
		reason string // "" for delivered
	}{
		{"delivered", answerOK, nil, ""},
		{"rejected", status(http.StatusBadRequest), nil, DropRejected},
		{"gave up", status(http.StatusBadGateway), func(c *Config) { c.MaxAttempts = 2 }, DropGaveUp},
		{"retry dropped at shutdown", status(http.StatusBadGateway), func(c *Config) {
			c.BaseBackoff, c.MaxBackoff, c.MaxAge, c.DrainTimeout = time.Hour, time.Hour, 2*time.Hour, 50*time.Millisecond
		}, DropShutdown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, tt.answer)
			cfg := fastRetries(Config{URL: b.URL})
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			f := newForwarder(t, cfg)
			stop := start(t, f)
			for range 3 {
				if !f.Enqueue(tencentQuery, []byte(`{"CallbackCommand":"Live.CallbackAfterCreateRoom"}`)) {
					t.Fatal("Enqueue refused a callback")
				}
			}
			eventually(t, 5*time.Second, "three attempts", func() bool { return len(b.requests()) >= 3 })
			if tt.reason == DropShutdown {
				stop()
			}
			eventually(t, 5*time.Second, "the ends", func() bool {
				if tt.reason == "" {
					return requests(f, KindAsync, OutcomeOK) == 3
				}
				return dropped(f, tt.reason) == 3
			})
			if held := queueBytes(f); held != 0 {
				t.Errorf("queue bytes = %d after every delivery ended, want 0", held)
			}
		})
	}
}

// TestQueueHeapStaysBounded enqueues fresh 60 KiB bodies, as the callback server hands
// them over, to a backend that is down: the heap grows by about QueueBytes, not by
// everything sent.
func TestQueueHeapStaysBounded(t *testing.T) {
	const bound = 4 << 20
	f := newForwarder(t, Config{URL: closedURL(t), QueueBytes: bound, MaxAttempts: 1 << 20,
		BaseBackoff: time.Hour, MaxBackoff: time.Hour, MaxAge: 2 * time.Hour, DrainTimeout: time.Millisecond})
	start(t, f)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const sent, size = 1000, 60 << 10
	for range sent {
		f.Enqueue(tencentQuery, bytes.Repeat([]byte("x"), size))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %.1f MiB after %d × %d KiB callbacks with a %d MiB bound (%.1f MiB sent)",
		float64(growth)/(1<<20), sent, size>>10, bound>>20, float64(sent*size)/(1<<20))
	if limit := int64(bound + 2<<20); growth > limit {
		t.Errorf("heap grew by %d bytes, more than the %d bound and 2 MiB of slack", growth, bound)
	}
	if n := dropped(f, DropOverflow); n == 0 {
		t.Error("nothing dropped as overflow")
	}
}
