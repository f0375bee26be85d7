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
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

const (
	testAppID         = 1400000000
	testNamespace     = "rooms"
	operatorNamespace = "liveroom-system"
	firstToken        = "token-one"
	// suiteReplica is the suite server's replica: its Lease's name.
	suiteReplica = "suite-replica"
	// suiteLabel is the app label of the suite's app; the unit servers' app has the
	// same namespace and name.
	suiteLabel = testNamespace + "/app"
	unitLabel  = suiteLabel
)

// The suite shares one control plane and one running callback server, which serves the
// LiveApp suiteApp (testAppID, rooms in testNamespace) signed with firstToken.
var (
	cfg        *rest.Config
	k8s        client.Client // direct, uncached
	srv        *Server
	srvURL     string
	srvCache   cache.Cache
	writes     *writeCounter
	metrics    *Metrics
	registry   *prometheus.Registry
	suiteApp   *livev1.LiveApp
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
	for _, ns := range []string{testNamespace, operatorNamespace} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			panic(err)
		}
	}
	suiteApp = &livev1.LiveApp{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: testNamespace}, Spec: livev1.LiveAppSpec{SDKAppID: testAppID}}
	if err := k8s.Create(ctx, suiteApp); err != nil {
		panic(err)
	}
	if err := writeProjection(ctx, suiteApp, firstToken); err != nil {
		panic(err)
	}

	mgr, err := suite.NewManager(caches.CallbackServer(operatorNamespace))
	if err != nil {
		panic(err)
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		panic(err)
	}
	srvCache = mgr.GetCache()
	writes = &writeCounter{Client: mgr.GetClient(), perRoom: map[string]int{}}
	registry = prometheus.NewRegistry()
	metrics = NewMetrics(registry)
	store := roomstore.New(roomstore.Config{Client: writes, APIReader: mgr.GetAPIReader(),
		FieldOwner: FieldOwner, Recorder: mgr.GetEventRecorder(FieldOwner)})
	counts := audience.New(audience.Config{Replica: "suite", Interval: countInterval, Log: logr.Discard()}, storesOf(store))
	srv = New(Options{BindAddress: "127.0.0.1:0", OperatorNamespace: operatorNamespace, Replica: suiteReplica,
		Apps: mgr.GetCache(), Client: mgr.GetClient()}, store, counts, metrics, logr.Discard())
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

// writeCounter counts the API writes the server stores per LiveRoom name. A write the API
// server refuses (a conflict the store retries after its cache catches up) is not one.
type writeCounter struct {
	client.Client
	mu      sync.Mutex
	perRoom map[string]int
}

func (w *writeCounter) count(ac runtime.ApplyConfiguration, err error) {
	if named, ok := ac.(interface{ GetName() string }); ok && err == nil {
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
	err := w.Client.Apply(ctx, ac, opts...)
	w.count(ac, err)
	return err
}

func (w *writeCounter) Status() client.SubResourceWriter {
	return &statusCounter{SubResourceWriter: w.Client.Status(), w: w}
}

type statusCounter struct {
	client.SubResourceWriter
	w *writeCounter
}

func (s *statusCounter) Apply(ctx context.Context, ac runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	err := s.SubResourceWriter.Apply(ctx, ac, opts...)
	s.w.count(ac, err)
	return err
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

// storesOf writes each app's rooms through store.ForApp.
func storesOf(store *roomstore.Store) audience.Stores {
	return func(namespace string, sdkAppID int64) audience.Store { return store.ForApp(namespace, sdkAppID) }
}

// onlyStore writes every app's rooms through store.
func onlyStore(store audience.Store) audience.Stores {
	return func(string, int64) audience.Store { return store }
}

// serverOn builds a callback server whose writes go through c (reads through apiReader),
// with a count lane of its own running until the test ends, serving the suite's app as
// the API server has it now.
func serverOn(t *testing.T, opts Options, c client.Client, apiReader client.Reader) *Server {
	t.Helper()
	store := roomstore.New(roomstore.Config{Client: c, APIReader: apiReader, FieldOwner: FieldOwner})
	s := New(opts, store, startCounts(t, storesOf(store)), nil, logr.Discard())
	app, proj := suiteAppNow(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.ServeApps(ctx, []livev1.LiveApp{*app}, []corev1.Secret{*proj})
	return s
}

// suiteAppNow is the suite's LiveApp and its projection as the API server has them.
func suiteAppNow(t testing.TB) (*livev1.LiveApp, *corev1.Secret) {
	t.Helper()
	var app livev1.LiveApp
	var proj corev1.Secret
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(suiteApp), &app); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: apps.ProjectionName(app.UID)}, &proj); err != nil {
		t.Fatal(err)
	}
	return &app, &proj
}

// writeProjection creates or updates app's projection Secret with tokens (one per line)
// and no Authorization, as the controller does.
func writeProjection(ctx context.Context, app *livev1.LiveApp, tokens string) error {
	return writeProjectionData(ctx, app, map[string][]byte{apps.TokensKey: []byte(tokens)})
}

func writeProjectionData(ctx context.Context, app *livev1.LiveApp, data map[string][]byte) error {
	want := projectionOf(app, "")
	want.Data = data
	want.Annotations[apps.TokensHashAnnotation] = apps.TokensHash(apps.ParseTokens(string(data[apps.TokensKey])))
	var cur corev1.Secret
	err := k8s.Get(ctx, client.ObjectKeyFromObject(&want), &cur)
	if apierrors.IsNotFound(err) {
		return k8s.Create(ctx, &want)
	}
	if err != nil {
		return err
	}
	cur.Data, cur.Annotations = want.Data, want.Annotations
	return k8s.Update(ctx, &cur)
}

// startCounts runs a count lane on stores until the test ends.
func startCounts(t testing.TB, stores audience.Stores) *audience.Lane {
	t.Helper()
	lane := audience.New(audience.Config{Replica: "test", Interval: countInterval, WritesPerSecond: 1000, Log: logr.Discard()}, stores)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = lane.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return lane
}
