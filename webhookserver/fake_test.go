package webhookserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
)

// memStore is an in-memory roomWriter: it applies mutations to rooms kept in a map, so
// handler tests and the fuzz target need no API server.
type memStore struct {
	// refuse, if set, makes Mutate fail for the rooms it returns an error for.
	refuse func(roomID string) error
	// panics makes Mutate panic, as a bug in a mutation would.
	panics atomic.Bool

	mu      sync.Mutex
	rooms   map[string]*livev1.LiveRoom
	applied map[string]int // mutations stored, per RoomId
}

func newMemStore() *memStore {
	return &memStore{rooms: map[string]*livev1.LiveRoom{}, applied: map[string]int{}}
}

func (s *memStore) Mutate(_ context.Context, roomID, origin string, m roomstate.Mutation) (roomstore.Result, error) {
	if s.panics.Load() {
		panic("store bug")
	}
	if s.refuse != nil {
		if err := s.refuse(roomID); err != nil {
			return roomstore.Result{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.rooms[roomID]
	if room == nil {
		room = &livev1.LiveRoom{Spec: livev1.LiveRoomSpec{RoomID: roomID}}
		room.Annotations = map[string]string{livev1.OriginAnnotation: origin}
	}
	room = room.DeepCopy()
	outcome := m(room)
	s.rooms[roomID] = room
	s.applied[roomID]++
	return roomstore.Result{Outcome: outcome, Room: room}, nil
}

func (s *memStore) appliedTo(roomID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[roomID]
}

var errStoreDown = errors.New("store unavailable")

// fakeForwarder answers blocking callbacks itself and records queued bodies.
type fakeForwarder struct {
	// panics makes Enqueue panic.
	panics atomic.Bool
	// running is true between Start and the end of its context.
	running atomic.Bool

	mu     sync.Mutex
	queued [][]byte
}

func (f *fakeForwarder) Start(ctx context.Context) error {
	f.running.Store(true)
	<-ctx.Done()
	f.running.Store(false)
	return nil
}

func (f *fakeForwarder) Forward(context.Context, string, []byte) forward.Answer {
	return forward.Answer{Status: http.StatusOK, Body: okBody, Header: http.Header{"Content-Type": {"application/json"}}, FromBackend: true}
}

func (f *fakeForwarder) Enqueue(_ string, body []byte) bool {
	if f.panics.Load() {
		panic("forwarder bug")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued = append(f.queued, body)
	return true
}

func (f *fakeForwarder) bodies() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.queued...)
}

// unitApp is the app a server on a memStore serves: testAppID, rooms in testNamespace.
type unitApp struct {
	// tokens are projected; nil: no projection.
	tokens        []string
	allowUnsigned bool
	maxSkew       time.Duration
	// forwarder, if set, is the app's fan-out.
	forwarder runningForwarder
}

// signedApp is the usual unit app: signed with firstToken.
var signedApp = unitApp{tokens: []string{firstToken}}

// testApp is a LiveApp of testAppID serving testNamespace.
func testApp() livev1.LiveApp {
	return livev1.LiveApp{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: testNamespace, UID: "uid-of-app", Generation: 1},
		Spec:       livev1.LiveAppSpec{SDKAppID: testAppID},
	}
}

// projectionOf is the projection Secret the controller writes for app.
func projectionOf(app *livev1.LiveApp, tokens string) corev1.Secret {
	return corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: apps.ProjectionName(app.UID), Namespace: operatorNamespace,
			Labels:      map[string]string{apps.ProjectionAppLabel: string(app.UID)},
			Annotations: map[string]string{apps.ProjectionAppAnnotation: app.Namespace + "/" + app.Name},
		},
		Data: map[string][]byte{apps.TokensKey: []byte(tokens)},
	}
}

// serve makes s serve ua until the test ends.
func (ua unitApp) serve(t testing.TB, s *Server) {
	t.Helper()
	app := testApp()
	app.Spec.Callback.AllowUnsigned = ua.allowUnsigned
	if ua.maxSkew != 0 {
		app.Spec.Callback.MaxSkew = &metav1.Duration{Duration: ua.maxSkew}
	}
	if ua.forwarder != nil {
		app.Spec.Forward = &livev1.LiveAppForward{URL: "http://backend.invalid/tencent"}
		s.apps.newForwarder = func(forward.Config) (runningForwarder, error) { return ua.forwarder, nil }
	}
	var projections []corev1.Secret
	if ua.tokens != nil {
		projections = append(projections, projectionOf(&app, strings.Join(ua.tokens, "\n")))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.ServeApps(ctx, []livev1.LiveApp{app}, projections)
}

// fakeQuota records the room quota warnings it is given.
type fakeQuota struct {
	mu  sync.Mutex
	got []livev1.RoomQuotaStatus
}

func (f *fakeQuota) setRoomQuota(_ context.Context, _ types.NamespacedName, q livev1.RoomQuotaStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, q)
	return nil
}

// memStores writes every app's rooms to store.
func memStores(store roomWriter) func(string, int64) roomWriter {
	return func(string, int64) roomWriter { return store }
}

// newUnitServer is a server on a memStore serving the app signed with firstToken.
func newUnitServer(t testing.TB, opts Options, store roomWriter, log logr.Logger) *Server {
	t.Helper()
	return newUnitServerFor(t, opts, signedApp, store, log)
}

// newUnitServerFor is a server on a memStore serving ua, with a count lane running until
// the test ends.
func newUnitServerFor(t testing.TB, opts Options, ua unitApp, store roomWriter, log logr.Logger) *Server {
	t.Helper()
	s := newServer(opts, memStores(store), startCounts(t, onlyStore(store)), nil, log)
	s.quota = &fakeQuota{}
	ua.serve(t, s)
	return s
}

// signedQuery is the query Tencent sends for command, signed with token at requestTime.
func signedQuery(command, token, requestTime string) url.Values {
	q := url.Values{}
	q.Set("SdkAppid", strconv.Itoa(testAppID))
	q.Set("CallbackCommand", command)
	q.Set("contenttype", "json")
	q.Set("RequestTime", requestTime)
	q.Set("Sign", Sign(token, requestTime))
	return q
}

func nowRequestTime() string { return strconv.FormatInt(time.Now().Unix(), 10) }

// serve passes one request to the server's handler and returns the recorded answer.
func serve(s *Server, rawQuery string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/callback", bytes.NewReader(body))
	req.URL.RawQuery = rawQuery
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// logLine is one line a test logger wrote.
type logLine struct {
	Error bool // written with Error rather than Info
	Text  string
}

// lineLog is a logger that keeps every line it writes, rendered by funcr.
type lineLog struct {
	mu    sync.Mutex
	lines []logLine
}

func (l *lineLog) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		// funcr gives Info lines a level and Error lines none.
		l.lines = append(l.lines, logLine{Error: !strings.Contains(args, `"level"=`), Text: prefix + " " + args})
	}, funcr.Options{})
}

// reset forgets the lines written so far, e.g. those of setting up the apps.
func (l *lineLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = nil
}

func (l *lineLog) all() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logLine(nil), l.lines...)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func drain(r io.Reader) { _, _ = io.Copy(io.Discard, r) }
