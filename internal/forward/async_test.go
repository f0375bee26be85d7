package forward

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fastRetries keeps retry delays to a few milliseconds.
func fastRetries(cfg Config) Config {
	cfg.BaseBackoff = time.Millisecond
	cfg.MaxBackoff = 5 * time.Millisecond
	cfg.Timeout = time.Second
	return cfg
}

func TestEnqueueDeliversUnchanged(t *testing.T) {
	b := newBackend(t, answerOK)
	f := newForwarder(t, Config{URL: b.URL + "/cb"})
	start(t, f)
	want := map[string]string{}
	for i := range 5 {
		q := fmt.Sprintf("%s&n=%d", tencentQuery, i)
		body := fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom", "RoomId":"r%d","x":"\u00e9"}`, i)
		want[q] = body
		if !f.Enqueue(q, []byte(body)) {
			t.Fatal("Enqueue refused a callback on an empty queue")
		}
	}
	eventually(t, 5*time.Second, "5 deliveries", func() bool { return requests(f, KindAsync, OutcomeOK) == 5 })
	got := b.requests()
	if len(got) != 5 {
		t.Fatalf("backend got %d requests, want 5", len(got))
	}
	for _, r := range got {
		body, ok := want[r.rawQuery]
		if !ok || !bytes.Equal(r.body, []byte(body)) || r.method != http.MethodPost || r.contentType != "application/json" {
			t.Errorf("backend got %s ?%s %q (%s), not one of the callbacks sent", r.method, r.rawQuery, r.body, r.contentType)
		}
		delete(want, r.rawQuery)
	}
	if v := testutil.ToFloat64(f.Metrics().QueueDepth); v != 0 {
		t.Errorf("queue depth = %v after delivery, want 0", v)
	}
}

func TestEnqueueRetriesUntilDelivered(t *testing.T) {
	for _, failure := range []int{http.StatusInternalServerError, http.StatusTooManyRequests} {
		t.Run(http.StatusText(failure), func(t *testing.T) {
			b := newBackend(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n <= 3 {
					w.WriteHeader(failure)
					return
				}
				answerOK(n, w, r)
			})
			f := newForwarder(t, fastRetries(Config{URL: b.URL}))
			stop := start(t, f)
			body := []byte(`{"CallbackCommand":"Live.CallbackAfterCreateRoom"}`)
			f.Enqueue(tencentQuery, body)
			eventually(t, 5*time.Second, "delivery", func() bool { return requests(f, KindAsync, OutcomeOK) == 1 })
			stop()
			if n := len(b.requests()); n != 4 {
				t.Errorf("backend got %d requests, want 4", n)
			}
			if n := attempts(f, KindAsync); n != 4 {
				t.Errorf("attempts = %d, want 4", n)
			}
			if n := requests(f, KindAsync, OutcomeError); n != 3 {
				t.Errorf("failed attempts = %d, want 3", n)
			}
			for _, r := range b.requests() {
				if r.rawQuery != tencentQuery || !bytes.Equal(r.body, body) {
					t.Errorf("retry changed the request: ?%s %q", r.rawQuery, r.body)
				}
			}
			for _, reason := range reasons {
				if n := dropped(f, reason); n != 0 {
					t.Errorf("dropped{%s} = %d, want 0", reason, n)
				}
			}
		})
	}
}

func TestEnqueueGivesUp(t *testing.T) {
	t.Run("max attempts", func(t *testing.T) {
		f := newForwarder(t, fastRetries(Config{URL: closedURL(t), MaxAttempts: 3}))
		start(t, f)
		f.Enqueue(tencentQuery, []byte(`{}`))
		eventually(t, 5*time.Second, "give up", func() bool { return dropped(f, DropGaveUp) == 1 })
		if n := requests(f, KindAsync, OutcomeError); n != 3 {
			t.Errorf("attempts = %d, want 3", n)
		}
	})
	t.Run("max age", func(t *testing.T) {
		b := newBackend(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
		cfg := fastRetries(Config{URL: b.URL, MaxAttempts: 1000, MaxAge: 100 * time.Millisecond})
		cfg.BaseBackoff, cfg.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
		f := newForwarder(t, cfg)
		start(t, f)
		began := time.Now()
		f.Enqueue(tencentQuery, []byte(`{}`))
		eventually(t, 5*time.Second, "give up", func() bool { return dropped(f, DropGaveUp) == 1 })
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("gave up after %v, want about MaxAge", took)
		}
		if n := attempts(f, KindAsync); n < 2 || n >= 1000 {
			t.Errorf("attempts = %d, want a few", n)
		}
	})
}

func TestEnqueueRejectedIsNotRetried(t *testing.T) {
	b := newBackend(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	f := newForwarder(t, fastRetries(Config{URL: b.URL}))
	stop := start(t, f)
	f.Enqueue(tencentQuery, []byte(`{}`))
	eventually(t, 5*time.Second, "rejection", func() bool { return dropped(f, DropRejected) == 1 })
	stop()
	if n := len(b.requests()); n != 1 {
		t.Errorf("backend got %d requests, want 1", n)
	}
	if n := requests(f, KindAsync, OutcomeRejected); n != 1 {
		t.Errorf("requests{async,rejected} = %d, want 1", n)
	}
}

// logLines collects log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

func (l *logLines) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func TestEnqueueOverflow(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, hang(release))
	logs := &logLines{}
	f := newForwarder(t, Config{URL: b.URL, QueueSize: 3, Workers: 1, Timeout: 10 * time.Second, Log: funcr.New(logs.add, funcr.Options{})})
	start(t, f)
	t.Cleanup(func() { // runs before the stop registered by start
		select {
		case <-release:
		default:
			close(release)
		}
	})

	began := time.Now()
	accepted := 0
	for range 50 {
		if f.Enqueue(tencentQuery, []byte(`{}`)) {
			accepted++
		}
	}
	if accepted != 3 {
		t.Errorf("accepted %d of a burst of 50 with QueueSize 3, want 3", accepted)
	}
	if n := dropped(f, DropOverflow); n != 50-accepted {
		t.Errorf("dropped{overflow} = %d, want %d", n, 50-accepted)
	}
	if v := testutil.ToFloat64(f.Metrics().QueueDepth); v != 3 {
		t.Errorf("queue depth = %v, want 3", v)
	}
	// At most one line per second, each with the running count.
	lines := logs.matching("after-event callback dropped")
	if most := 1 + int(time.Since(began)/time.Second); len(lines) < 1 || len(lines) > most ||
		!strings.Contains(lines[0], `"droppedTotal"=1`) {
		t.Errorf("overflow log lines = %q, want 1 to %d, the first with droppedTotal 1", lines, most)
	}

	close(release)
	eventually(t, 5*time.Second, "the held deliveries", func() bool { return requests(f, KindAsync, OutcomeOK) == 3 })
	if !f.Enqueue(tencentQuery, []byte(`{}`)) {
		t.Error("Enqueue refused a callback once the queue had room")
	}
}

func TestBackoff(t *testing.T) {
	base, maxDelay := 500*time.Millisecond, 30*time.Second
	for n := 1; n <= 100; n++ {
		ceiling := maxDelay
		if n < 8 {
			ceiling = base << (n - 1)
		}
		var longest time.Duration
		for range 200 {
			d := backoff(n, base, maxDelay)
			if d < 0 || d >= ceiling {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", n, d, ceiling)
			}
			longest = max(longest, d)
		}
		if longest < ceiling/2 {
			t.Errorf("backoff(%d) never exceeded %v in 200 draws: no jitter up to %v", n, longest, ceiling)
		}
	}
}
