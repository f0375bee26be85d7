package lanes

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/rest"
)

func TestRestConfigCountsWritesOfItsLaneOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	base := &rest.Config{Host: srv.URL, QPS: 5, Burst: 10}
	cfg := RestConfig(base, "test-lane", 1000, 1000)
	if base.QPS != 5 || cfg.QPS != 1000 {
		t.Fatalf("QPS base %v lane %v: the lane must have its own", base.QPS, cfg.QPS)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(Writes.WithLabelValues("test-lane"))
	for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := testutil.ToFloat64(Writes.WithLabelValues("test-lane")) - before; got != 4 {
		t.Fatalf("%v writes counted, want 4", got)
	}
}

// Waiters whose deadline the queue would outlast are refused at once, not at the deadline.
func TestGateRefusesEarlyUnderOverload(t *testing.T) {
	g := NewGate(2, nil)
	// Teach the gate that a write takes 50 ms.
	for range 20 {
		release, err := g.Enter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		g.observe(50 * time.Millisecond)
		release()
	}
	// Both slots taken for a while.
	var holders []func()
	for range 2 {
		release, err := g.Enter(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		holders = append(holders, release)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := g.Enter(ctx); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("err %v, want ErrOverloaded", err)
	}
	if d := time.Since(start); d > 5*time.Millisecond {
		t.Fatalf("refused after %v, want at once", d)
	}
	// A waiter with time enough gets a slot once one frees.
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		release, err := g.Enter(ctx)
		if err != nil {
			t.Errorf("waiter with time: %v", err)
			return
		}
		release()
	})
	for g.waiting.Load() == 0 {
		time.Sleep(time.Millisecond) // until the waiter waits
	}
	holders[0]()
	wg.Wait()
	holders[1]()
}
