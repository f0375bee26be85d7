package webhookserver

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

const (
	testAppID     = 1400000000
	testNamespace = "rooms"
	firstToken    = "token-one"
)

// The suite shares one control plane and one running callback server.
var (
	cfg        *rest.Config
	k8s        client.Client // direct, uncached
	srv        *Server
	srvURL     string
	writes     *writeCounter
	metrics    *Metrics
	tokenFile  string
	testScheme = testenv.Scheme
)

func TestMain(m *testing.M) {
	flag.Parse()
	if fuzzing() {
		// The fuzz targets need no API server (make fuzz runs them alone, -run '^$'), and
		// every fuzz worker runs TestMain: do not start a control plane in each.
		os.Exit(m.Run())
	}
	os.Exit(runSuite(m))
}

// fuzzing reports whether this process fuzzes (-test.fuzz) or is a fuzz worker.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

func runSuite(m *testing.M) int {
	suite, err := testenv.StartSuite()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer suite.Stop()
	cfg, k8s = suite.Config, suite.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}); err != nil {
		panic(err)
	}

	dir, err := os.MkdirTemp("", "tokens")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	tokenFile = filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte(firstToken+"\n"), 0o600); err != nil {
		panic(err)
	}

	mgr, err := suite.NewManager(caches.CallbackServer())
	if err != nil {
		panic(err)
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		panic(err)
	}
	tokens, err := NewTokens(tokenFile, "")
	if err != nil {
		panic(err)
	}
	writes = &writeCounter{Client: mgr.GetClient(), perRoom: map[string]int{}}
	metrics = NewMetrics(prometheus.NewRegistry())
	store := roomstore.New(roomstore.Config{Client: writes, APIReader: mgr.GetAPIReader(), Namespace: testNamespace,
		SDKAppID: testAppID, FieldOwner: FieldOwner, Recorder: mgr.GetEventRecorder(FieldOwner)})
	counts := audience.New(audience.Config{Replica: "suite", Interval: countInterval, Log: logr.Discard()}, store)
	srv = New(Options{BindAddress: "127.0.0.1:0", SDKAppID: testAppID, Namespace: testNamespace, Tokens: tokens},
		store, counts, metrics, logr.Discard())
	if err := mgr.Add(srv); err != nil {
		panic(err)
	}
	if err := mgr.Add(counts); err != nil {
		panic(err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			panic(err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for srv.Addr() == nil || !mgr.GetCache().WaitForCacheSync(ctx) {
		if time.Now().After(deadline) {
			panic("callback server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srvURL = "http://" + srv.Addr().String() + "/callback"
	return m.Run()
}

// writeCounter counts the API writes the server makes per LiveRoom name.
type writeCounter struct {
	client.Client
	mu      sync.Mutex
	perRoom map[string]int
}

func (w *writeCounter) count(ac runtime.ApplyConfiguration) {
	if named, ok := ac.(interface{ GetName() string }); ok {
		w.mu.Lock()
		w.perRoom[named.GetName()]++
		w.mu.Unlock()
	}
}

func (w *writeCounter) writesTo(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.perRoom[name]
}

func (w *writeCounter) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	w.count(ac)
	return w.Client.Apply(ctx, ac, opts...)
}

func (w *writeCounter) Status() client.SubResourceWriter {
	return &statusCounter{SubResourceWriter: w.Client.Status(), w: w}
}

type statusCounter struct {
	client.SubResourceWriter
	w *writeCounter
}

func (s *statusCounter) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	s.w.count(ac)
	return s.SubResourceWriter.Apply(ctx, ac, opts...)
}

// callback is one request to the server.
type callback struct {
	command     string
	body        string
	token       string // "" signs with firstToken
	requestTime int64  // 0: now
	unsigned    bool
	sdkAppID    string // "": the test app
	method      string // "": POST
	url         string // "": the shared server
}

type reply struct {
	status int
	answer
}

func send(t testing.TB, c callback) reply {
	t.Helper()
	q := url.Values{}
	q.Set("SdkAppid", strconv.Itoa(testAppID))
	if c.sdkAppID != "" {
		q.Set("SdkAppid", c.sdkAppID)
	}
	q.Set("CallbackCommand", c.command)
	q.Set("contenttype", "json")
	q.Set("ClientIP", "127.0.0.1")
	q.Set("OptPlatform", "RESTAPI")
	if !c.unsigned {
		rt := c.requestTime
		if rt == 0 {
			rt = time.Now().Unix()
		}
		tok := c.token
		if tok == "" {
			tok = firstToken
		}
		q.Set("RequestTime", strconv.FormatInt(rt, 10))
		q.Set("Sign", Sign(tok, strconv.FormatInt(rt, 10)))
	}
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	target := c.url
	if target == "" {
		target = srvURL
	}
	req, err := http.NewRequest(method, target+"?"+q.Encode(), bytes.NewBufferString(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	r.status = resp.StatusCode
	if err := json.NewDecoder(resp.Body).Decode(&r.answer); err != nil {
		t.Fatalf("answer is not JSON (status %d): %v", resp.StatusCode, err)
	}
	return r
}

func getRoom(t testing.TB, name string) *livev1.LiveRoom {
	t.Helper()
	var room livev1.LiveRoom
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: testNamespace, Name: name}, &room); err != nil {
		t.Fatalf("getting LiveRoom %s: %v", name, err)
	}
	return &room
}

// countInterval is the count lane's per-room interval in these tests.
const countInterval = 200 * time.Millisecond

// serverOn builds a callback server whose writes go through c (reads through apiReader),
// with a count lane of its own running until the test ends.
func serverOn(t *testing.T, opts Options, c client.Client, apiReader client.Reader) *Server {
	t.Helper()
	opts.SDKAppID, opts.Namespace = testAppID, testNamespace
	store := roomstore.New(roomstore.Config{Client: c, APIReader: apiReader, Namespace: testNamespace, SDKAppID: testAppID, FieldOwner: FieldOwner})
	return New(opts, store, startCounts(t, store), nil, logr.Discard())
}

// startCounts runs a count lane on store until the test ends.
func startCounts(t testing.TB, store audience.Store) *audience.Lane {
	t.Helper()
	lane := audience.New(audience.Config{Replica: "test", Interval: countInterval, WritesPerSecond: 1000, Log: logr.Discard()}, store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = lane.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return lane
}
