package forward

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A query string as Tencent sends it, with escapes that re-encoding would change.
const tencentQuery = "SdkAppid=1400000001&CallbackCommand=Live.CallbackAfterCreateRoom&contenttype=json" +
	"&ClientIP=10.0.0.1&OptPlatform=RESTAPI&Sign=ab%2Bc%2fd&RequestTime=1669872112&x=a+b%20c"

// received is one request as the test backend saw it.
type received struct {
	method, rawQuery, contentType string
	body                          []byte
}

// backend is an httptest server that records requests and answers with respond.
type backend struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, w http.ResponseWriter, r *http.Request) // n counts from 1
}

func newBackend(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *backend {
	return newBackendWith(t, respond, nil)
}

// newBackendWith lets configure adjust the server before it starts.
func newBackendWith(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request), configure func(*http.Server)) *backend {
	t.Helper()
	b := &backend{respond: respond}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, received{r.Method, r.URL.RawQuery, r.Header.Get("Content-Type"), body})
		n := len(b.got)
		b.mu.Unlock()
		b.respond(n, w, r)
	}))
	if configure != nil {
		configure(b.Config)
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *backend) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.got...)
}

func answerOK(_ int, w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
}

// hang answers only once the client gives up or the test ends.
func hang(done <-chan struct{}) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
}

// closedURL is the URL of a server that no longer listens.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func newForwarder(t *testing.T, cfg Config) *Forwarder {
	t.Helper()
	cfg.Registerer = prometheus.NewPedanticRegistry()
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

// start runs f.Start and returns a function that stops it and waits for it to return.
func start(t *testing.T, f *Forwarder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Start did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func requests(f *Forwarder, kind, outcome string) int {
	return int(testutil.ToFloat64(f.Metrics().Requests.WithLabelValues(kind, outcome)))
}

func dropped(f *Forwarder, reason string) int {
	return int(testutil.ToFloat64(f.Metrics().Dropped.WithLabelValues(reason)))
}

func attempts(f *Forwarder, kind string) int {
	n := 0
	for _, o := range outcomes {
		n += requests(f, kind, o)
	}
	return n
}
