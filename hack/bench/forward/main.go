// Command forward measures what forwarding to the app's backend costs the callback server:
// the latency it adds to blocking callbacks (operator in front vs. the backend called
// directly, same run) and the after-event throughput with a slow backend vs. no forwarding.
// Callbacks used here need no API server: gifts are answered by the backend, and the
// after-event command is one the operator only forwards.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

const (
	appID  = 1400000000
	token  = "bench-token"
	gift   = `{"CallbackCommand":"Live.CallbackBeforeSendGift","Operator_Account":"brennanli","RoomId":"room_id","GiftWater":{"From_Account":"from","To_Account":["to1"],"Time":1703589922,"GiftId":"gift1","Count":1,"Coins":1000}}`
	battle = `{"CallbackCommand":"Live.CallbackAfterCreateBattle","Operator_Account":"brennanli","BattleId":"battle-1","FromRoomId":"live-room1111","ToRoomIdList":["live-room2222"],"Timeout":10000,"Duration":300000,"NeedResponse":true,"EventTime":1739965885831}`
)

func main() {
	syncN := flag.Int("sync-requests", 3000, "blocking callbacks per side")
	asyncN := flag.Int("async-requests", 3000, "after-event callbacks per side")
	concurrency := flag.Int("concurrency", 16, "concurrent senders of after-event callbacks")
	slow := flag.Duration("backend-delay", 100*time.Millisecond, "how slow the backend is in the after-event run")
	flag.Parse()

	approve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)
	})
	fast := httptest.NewServer(approve)
	defer fast.Close()
	sluggish := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*slow)
		approve(w, r)
	}))
	defer sluggish.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inFront := server(ctx, fast.URL)
	plain := server(ctx, "")
	forwarding := server(ctx, sluggish.URL)

	fmt.Printf("Blocking callbacks (Live.CallbackBeforeSendGift), %d sequential requests per side\n", *syncN)
	direct := run(*syncN, 1, func() (int, error) { return post(fast.URL+"?"+query("Live.CallbackBeforeSendGift"), gift) })
	through := run(*syncN, 1, func() (int, error) { return post(inFront+"?"+query("Live.CallbackBeforeSendGift"), gift) })
	fmt.Printf("  %-28s p50 %8s  p99 %8s\n", "backend called directly", direct.p(50), direct.p(99))
	fmt.Printf("  %-28s p50 %8s  p99 %8s\n", "operator in front", through.p(50), through.p(99))
	fmt.Printf("  %-28s p50 %8s  p99 %8s\n", "added by the operator", through.p(50)-direct.p(50), through.p(99)-direct.p(99))

	fmt.Printf("\nAfter-event callbacks (Live.CallbackAfterCreateBattle), %d requests at concurrency %d, backend delay %s\n", *asyncN, *concurrency, *slow)
	none := run(*asyncN, *concurrency, func() (int, error) { return post(plain+"?"+query("Live.CallbackAfterCreateBattle"), battle) })
	fwd := run(*asyncN, *concurrency, func() (int, error) { return post(forwarding+"?"+query("Live.CallbackAfterCreateBattle"), battle) })
	fmt.Printf("  %-28s %8.0f/s  p50 %8s  p99 %8s  errors %d\n", "no forwarding", none.rate(), none.p(50), none.p(99), none.errors)
	fmt.Printf("  %-28s %8.0f/s  p50 %8s  p99 %8s  errors %d\n", "forwarding to slow backend", fwd.rate(), fwd.p(50), fwd.p(99), fwd.errors)
	fmt.Printf("  throughput ratio (forwarding / none): %.2f\n", fwd.rate()/none.rate())
}

// server starts a callback server, forwarding to backend when it is not empty, and
// returns its callback URL.
func server(ctx context.Context, backend string) string {
	opts := webhookserver.Options{Forward: forward.Config{Workers: 64}}
	// Only callbacks the operator does not store are sent: no room store or count lane.
	s := webhookserver.New(opts, roomstore.New(roomstore.Config{}), nil, nil, logr.Discard())
	app := livev1.LiveApp{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "bench", UID: "bench-app"},
		Spec:       livev1.LiveAppSpec{SDKAppID: appID},
	}
	if backend != "" {
		app.Spec.Forward = &livev1.LiveAppForward{URL: backend}
	}
	projection := corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: apps.ProjectionName(app.UID), Labels: map[string]string{apps.ProjectionAppLabel: string(app.UID)}},
		Data:       map[string][]byte{apps.TokensKey: []byte(token)},
	}
	s.ServeApps(ctx, []livev1.LiveApp{app}, []corev1.Secret{projection})
	return httptest.NewServer(s.Handler()).URL + "/callback"
}

func query(command string) string {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	return fmt.Sprintf("SdkAppid=%d&CallbackCommand=%s&contenttype=json&Sign=%s&RequestTime=%s", appID, command, webhookserver.Sign(token, rt), rt)
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func post(url, body string) (int, error) {
	resp, err := client.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

type result struct {
	latencies []time.Duration
	elapsed   time.Duration
	errors    int
}

func (r result) p(q int) time.Duration {
	return r.latencies[(len(r.latencies)-1)*q/100].Round(time.Microsecond)
}

func (r result) rate() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// run sends n requests from c goroutines after a short warm-up.
func run(n, c int, do func() (int, error)) result {
	for range 50 {
		_, _ = do()
	}
	var mu sync.Mutex
	res := result{}
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				t := time.Now()
				status, err := do()
				d := time.Since(t)
				mu.Lock()
				res.latencies = append(res.latencies, d)
				if err != nil || status != http.StatusOK {
					res.errors++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res
}
