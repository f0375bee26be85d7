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

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
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

	mu     sync.Mutex
	queued [][]byte
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

// unitTokens are the tokens of servers built on a memStore.
func unitTokens(t testing.TB) *Tokens {
	t.Helper()
	tokens, err := NewTokens("", firstToken)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// newUnitServer is a server on a memStore, signed with firstToken unless opts say else.
func newUnitServer(t testing.TB, opts Options, store roomWriter, log logr.Logger) *Server {
	t.Helper()
	opts.SDKAppID = testAppID
	opts.Namespace = testNamespace
	if opts.Tokens == nil && !opts.AllowUnsigned {
		opts.Tokens = unitTokens(t)
	}
	return newServer(opts, store, startCounts(t, store), nil, log)
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

func (l *lineLog) all() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logLine(nil), l.lines...)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func drain(r io.Reader) { _, _ = io.Copy(io.Discard, r) }
