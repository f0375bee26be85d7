package tencent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
)

const (
	appID = 1400000002
	admin = "administrator"
	key   = "first-key"
)

func ptr[T any](v T) *T { return &v }

// newFake starts a fake without its list rate limit, so tests that do not measure
// rates are not slowed down.
func newFake(t *testing.T) *faketencent.Server {
	t.Helper()
	s := faketencent.New(appID, admin, key)
	s.SetListRateLimit(0)
	t.Cleanup(s.Close)
	return s
}

// newClient makes a fast client: 1ms backoff, no client-side rate limits.
func newClient(t *testing.T, baseURL string, edit func(*tencent.Config)) *tencent.Client {
	t.Helper()
	cfg := tencent.Config{
		BaseURL:     baseURL,
		SDKAppID:    appID,
		AdminUser:   admin,
		SecretKey:   func() (string, error) { return key, nil },
		BaseBackoff: time.Millisecond,
		ListRate:    -1,
		DefaultRate: -1,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := tencent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewClientValidates(t *testing.T) {
	good := tencent.Config{BaseURL: "https://adminapisgp.im.qcloud.com", SDKAppID: appID, AdminUser: admin,
		SecretKey: func() (string, error) { return key, nil }}
	tests := []struct {
		name string
		edit func(*tencent.Config)
		ok   bool
	}{
		{"valid", func(*tencent.Config) {}, true},
		{"no BaseURL", func(c *tencent.Config) { c.BaseURL = "" }, false},
		{"BaseURL without scheme", func(c *tencent.Config) { c.BaseURL = "console.tim.qq.com" }, false},
		{"ftp BaseURL", func(c *tencent.Config) { c.BaseURL = "ftp://console.tim.qq.com" }, false},
		{"no SDKAppID", func(c *tencent.Config) { c.SDKAppID = 0 }, false},
		{"no AdminUser", func(c *tencent.Config) { c.AdminUser = "" }, false},
		{"no SecretKey", func(c *tencent.Config) { c.SecretKey = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			if _, err := tencent.NewClient(cfg); (err == nil) != tt.ok {
				t.Errorf("NewClient error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestRoomLifecycle(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	ctx := context.Background()

	err := c.CreateRoom(ctx, tencent.RoomInfo{RoomID: "live-1", RoomName: ptr("first"), MaxSeatCount: ptr(tencent.FlexInt(8)),
		TakeSeatMode: tencent.SeatModeApplyToTake, Category: []tencent.FlexInt{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	ri, err := c.GetRoomInfo(ctx, "live-1")
	if err != nil {
		t.Fatal(err)
	}
	if ri.RoomID != "live-1" || *ri.RoomName != "first" || ri.RoomType != tencent.RoomTypeLive || ri.OwnerAccount != admin ||
		*ri.MaxSeatCount != 8 || ri.TakeSeatMode != tencent.SeatModeApplyToTake || len(ri.Category) != 2 || ri.CreateTime == 0 {
		t.Errorf("GetRoomInfo = %+v", ri)
	}

	// A RoomInfo read back can be sent as an update.
	ri.RoomName, ri.Notice = ptr("second"), ptr("hello")
	if err := c.UpdateRoomInfo(ctx, *ri); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Room("live-1"); *got.RoomName != "second" || *got.Notice != "hello" || *got.MaxSeatCount != 8 {
		t.Errorf("after update: %+v", got)
	}

	rooms, next, err := c.GetRoomList(ctx, "", 20)
	if err != nil || len(rooms) != 1 || next != "" || rooms[0].RoomID != "live-1" {
		t.Errorf("GetRoomList = %+v, %q, %v", rooms, next, err)
	}

	stat, err := c.DestroyRoom(ctx, "live-1")
	if err != nil || stat == nil {
		t.Fatalf("DestroyRoom = %v, %v", stat, err)
	}
	if _, err := c.GetRoomInfo(ctx, "live-1"); !tencent.IsCode(err, tencent.CodeRoomNotFound) {
		t.Errorf("GetRoomInfo after destroy: %v", err)
	}
}

func TestLocalArgumentChecks(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	ctx := context.Background()
	checks := []struct {
		name string
		err  error
	}{
		{"create without id", c.CreateRoom(ctx, tencent.RoomInfo{})},
		{"create with a long id", c.CreateRoom(ctx, tencent.RoomInfo{RoomID: tencent.FlexString(strings.Repeat("x", 49))})},
		{"update without id", c.UpdateRoomInfo(ctx, tencent.RoomInfo{RoomName: ptr("x")})},
		{"destroy without id", func() error { _, err := c.DestroyRoom(ctx, ""); return err }()},
		{"get info without id", func() error { _, err := c.GetRoomInfo(ctx, ""); return err }()},
	}
	for _, ch := range checks {
		if ch.err == nil {
			t.Errorf("%s: no error", ch.name)
		}
	}
	for _, cmd := range []string{tencent.RESTCreateRoom, tencent.RESTUpdateRoomInfo, tencent.RESTDestroyRoom, tencent.RESTGetRoomInfo} {
		if n := s.Calls(cmd); n != 0 {
			t.Errorf("%s reached the server %d times", cmd, n)
		}
	}
}

// recorded is one request as a handwritten server saw it.
type recorded struct {
	method, path, contentType, body string
	query                           map[string]string
}

// recorder answers every request with reply(command) and keeps what it received.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	reply    func(command string, n int) (status int, body string)
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	q := map[string]string{}
	for k := range req.URL.Query() {
		q[k] = req.URL.Query().Get(k)
	}
	r.mu.Lock()
	r.requests = append(r.requests, recorded{req.Method, req.URL.Path, req.Header.Get("Content-Type"), string(body), q})
	n := len(r.requests)
	r.mu.Unlock()
	status, out := http.StatusOK, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RequestId":"Id-1"}`
	if r.reply != nil {
		status, out = r.reply(req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:], n)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, out)
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.requests...)
}

func startRecorder(t *testing.T, reply func(command string, n int) (int, string)) (*recorder, string) {
	t.Helper()
	rec := &recorder{reply: reply}
	ts := httptest.NewServer(rec)
	t.Cleanup(ts.Close)
	return rec, ts.URL
}

func TestRequestShape(t *testing.T) {
	rec, url := startRecorder(t, func(command string, _ int) (int, string) {
		if command == tencent.RESTGetRoomInfo {
			return 200, `{"ActionStatus":"OK","ErrorCode":0,"Response":{"RoomInfo":{"RoomId":"r"}}}`
		}
		return 200, `{"ActionStatus":"OK","ErrorCode":0}`
	})
	c := newClient(t, url+"/", nil)
	ctx := context.Background()
	full := tencent.RoomInfo{RoomID: "r", RoomName: ptr("n"), RoomType: tencent.RoomTypeLive, OwnerAccount: "o", CreateTime: 5, ViewCount: 7}

	tests := []struct {
		command, body string
		call          func() error
	}{
		{tencent.RESTCreateRoom, `{"RoomInfo":{"RoomId":"r","RoomType":"Live"}}`, func() error { return c.CreateRoom(ctx, tencent.RoomInfo{RoomID: "r"}) }},
		{tencent.RESTUpdateRoomInfo, `{"RoomInfo":{"RoomId":"r","RoomName":"n"}}`, func() error { return c.UpdateRoomInfo(ctx, full) }},
		{tencent.RESTDestroyRoom, `{"RoomId":"r"}`, func() error { _, err := c.DestroyRoom(ctx, "r"); return err }},
		{tencent.RESTGetRoomInfo, `{"RoomId":"r"}`, func() error { _, err := c.GetRoomInfo(ctx, "r"); return err }},
		{tencent.RESTGetRoomList, `{"Next":"","Count":20}`, func() error { _, _, err := c.GetRoomList(ctx, "", 20); return err }},
		{tencent.RESTGetRoomList, `{"Next":"abc","Count":20}`, func() error { _, _, err := c.GetRoomList(ctx, "abc", 500); return err }},
		{tencent.RESTGetRoomList, `{"Next":"","Count":1}`, func() error { _, _, err := c.GetRoomList(ctx, "", 0); return err }},
		{tencent.RESTGetRoomList, `{"Next":"","Count":1}`, func() error { _, _, err := c.GetRoomList(ctx, "", -3); return err }},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i, tt.command), func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			reqs := rec.all()
			got := reqs[len(reqs)-1]
			if got.method != http.MethodPost || got.path != "/v4/live_engine_http_srv/"+tt.command || got.contentType != "application/json" {
				t.Errorf("sent %s %s (%s)", got.method, got.path, got.contentType)
			}
			if got.body != tt.body {
				t.Errorf("body %s, want %s", got.body, tt.body)
			}
			q := got.query
			if q["sdkappid"] != strconv.Itoa(appID) || q["identifier"] != admin || q["contenttype"] != "json" || len(q) != 5 {
				t.Errorf("query %v", q)
			}
			if _, err := strconv.ParseUint(q["random"], 10, 32); err != nil {
				t.Errorf("random %q: %v", q["random"], err)
			}
			if err := tencent.VerifyUserSig(appID, key, admin, q["usersig"], time.Now()); err != nil {
				t.Errorf("usersig: %v", err)
			}
		})
	}
}

func TestLenientResponses(t *testing.T) {
	bodies := map[string]string{
		// Payload at the top level, owner as a number, seat mode as an integer.
		tencent.RESTGetRoomInfo: `{"ActionStatus":"OK","ErrorCode":0,"RoomInfo":{"RoomId":"r","Owner_Account":144115233775727695,"TakeSeatMode":1}}`,
		// The older destroy answer: a bare envelope.
		tencent.RESTDestroyRoom: `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`,
		tencent.RESTGetRoomList: `{"ActionStatus":"OK","ErrorCode":"0","Next":"1693271355-1","RoomList":[{"RoomId":"a"},{"RoomId":"b"}]}`,
	}
	_, url := startRecorder(t, func(command string, _ int) (int, string) { return 200, bodies[command] })
	c := newClient(t, url, nil)
	ctx := context.Background()

	ri, err := c.GetRoomInfo(ctx, "r")
	if err != nil || ri.OwnerAccount != "144115233775727695" || ri.TakeSeatMode != tencent.SeatModeFreeToTake {
		t.Errorf("GetRoomInfo = %+v, %v", ri, err)
	}
	if stat, err := c.DestroyRoom(ctx, "r"); err != nil || stat != nil {
		t.Errorf("DestroyRoom = %+v, %v", stat, err)
	}
	rooms, next, err := c.GetRoomList(ctx, "", 20)
	if err != nil || len(rooms) != 2 || next != "1693271355-1" {
		t.Errorf("GetRoomList = %+v, %q, %v", rooms, next, err)
	}
}

func TestMalformedResponses(t *testing.T) {
	tests := []struct {
		name, body string
		code       int
	}{
		{"not JSON", `<html>bad gateway</html>`, -1},
		{"empty", ``, -1},
		{"FAIL without a code", `{"ActionStatus":"FAIL","ErrorCode":0}`, 0},
		{"no RoomInfo", `{"ActionStatus":"OK","ErrorCode":0,"Response":{}}`, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, url := startRecorder(t, func(string, int) (int, string) { return 200, tt.body })
			_, err := newClient(t, url, nil).GetRoomInfo(context.Background(), "r")
			if err == nil {
				t.Fatal("no error")
			}
			if tt.code >= 0 && !tencent.IsCode(err, tt.code) {
				t.Errorf("error %v, want code %d", err, tt.code)
			}
			if n := len(rec.all()); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
	}
}

func TestRetriesByErrorCode(t *testing.T) {
	tests := []struct {
		code, times int
		retry       bool
	}{
		{tencent.CodeInternal, 2, true},
		{tencent.CodeRateLimited, 3, true},
		{tencent.CodeTooFrequent, 1, true},
		{tencent.CodeTooFrequentAlt, 1, true},
		{tencent.CodeTimeoutOrBadFormat, 1, true},
		{tencent.CodeCreateTooFrequent, 1, true},
		{tencent.CodeInvalidParam, 1, false},
		{tencent.CodeRoomExists, 1, false},
		{tencent.CodeRoomNotFound, 1, false},
		{tencent.CodeRoomExistsSameOwner, 1, false},
		{tencent.CodeUserSigExpired, 1, false},
		{tencent.CodeUserSigInvalid, 1, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			t.Parallel()
			s := newFake(t)
			s.AddRoom(tencent.RoomInfo{RoomID: "r"})
			c := newClient(t, s.URL(), nil)
			s.FailNext(tencent.RESTGetRoomInfo, tt.code, tt.times)
			_, err := c.GetRoomInfo(context.Background(), "r")
			calls := s.Calls(tencent.RESTGetRoomInfo)
			if tt.retry {
				if err != nil || calls != tt.times+1 {
					t.Errorf("got %v after %d calls, want success after %d", err, calls, tt.times+1)
				}
				return
			}
			var ae *tencent.APIError
			if !errors.As(err, &ae) || ae.Code != tt.code || calls != 1 {
				t.Errorf("got %v after %d calls, want code %d after 1", err, calls, tt.code)
			}
		})
	}
}

func TestRetriesGiveUp(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), func(cfg *tencent.Config) { cfg.MaxAttempts = 3 })
	s.FailNext(tencent.RESTCreateRoom, tencent.CodeInternal, 10)
	err := c.CreateRoom(context.Background(), tencent.RoomInfo{RoomID: "r"})
	if !tencent.IsCode(err, tencent.CodeInternal) || !tencent.IsRetryable(err) || s.Calls(tencent.RESTCreateRoom) != 3 {
		t.Errorf("got %v after %d calls, want 100001 after 3", err, s.Calls(tencent.RESTCreateRoom))
	}
}

func TestCreateRetriedAfterInternalError(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	s.FailNext(tencent.RESTCreateRoom, tencent.CodeInternal, 2)
	if err := c.CreateRoom(context.Background(), tencent.RoomInfo{RoomID: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Room("r"); !ok || s.Calls(tencent.RESTCreateRoom) != 3 {
		t.Errorf("room stored %v after %d calls, want 3", ok, s.Calls(tencent.RESTCreateRoom))
	}
}

func TestRoomErrorsAreNotRetried(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), nil)
	ctx := context.Background()
	if err := c.CreateRoom(ctx, tencent.RoomInfo{RoomID: "mine"}); err != nil {
		t.Fatal(err)
	}
	s.AddRoom(tencent.RoomInfo{RoomID: "theirs", RoomType: tencent.RoomTypeLive, OwnerAccount: "alice"})

	tests := []struct {
		name, command string
		call          func() error
		code          int
	}{
		{"same owner", tencent.RESTCreateRoom, func() error { return c.CreateRoom(ctx, tencent.RoomInfo{RoomID: "mine"}) }, tencent.CodeRoomExistsSameOwner},
		{"other owner", tencent.RESTCreateRoom, func() error { return c.CreateRoom(ctx, tencent.RoomInfo{RoomID: "theirs"}) }, tencent.CodeRoomExists},
		{"invalid", tencent.RESTCreateRoom, func() error {
			return c.CreateRoom(ctx, tencent.RoomInfo{RoomID: "bad", Category: []tencent.FlexInt{1, 2, 3, 4}})
		}, tencent.CodeInvalidParam},
		{"destroy absent", tencent.RESTDestroyRoom, func() error { _, err := c.DestroyRoom(ctx, "absent"); return err }, tencent.CodeRoomNotFound},
		{"update absent", tencent.RESTUpdateRoomInfo, func() error {
			return c.UpdateRoomInfo(ctx, tencent.RoomInfo{RoomID: "absent", RoomName: ptr("x")})
		}, tencent.CodeRoomNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Calls(tt.command)
			err := tt.call()
			var ae *tencent.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if ae.Code != tt.code || ae.Command != tt.command || ae.RequestID == "" || ae.Info == "" ||
				!strings.Contains(err.Error(), strconv.Itoa(tt.code)) {
				t.Errorf("APIError %+v, want code %d from %s", ae, tt.code, tt.command)
			}
			if tencent.IsRetryable(err) || s.Calls(tt.command)-before != 1 {
				t.Errorf("%d calls, want 1", s.Calls(tt.command)-before)
			}
		})
	}
}

func TestHTTPFailures(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int // answered in turn, then 200
		wantErr   bool
		wantCalls int
	}{
		{"503 then OK", []int{503}, false, 2},
		{"429 then OK", []int{429, 429}, false, 3},
		{"500 throughout", []int{500, 500, 500, 500, 500}, true, 4},
		{"400", []int{400}, true, 1},
		{"404", []int{404}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, url := startRecorder(t, func(_ string, n int) (int, string) {
				if n <= len(tt.statuses) {
					return tt.statuses[n-1], "upstream trouble"
				}
				return 200, `{"ActionStatus":"OK","ErrorCode":0}`
			})
			err := newClient(t, url, nil).UpdateRoomInfo(context.Background(), tencent.RoomInfo{RoomID: "r"})
			if (err != nil) != tt.wantErr || len(rec.all()) != tt.wantCalls {
				t.Errorf("got %v after %d calls, want error=%v after %d", err, len(rec.all()), tt.wantErr, tt.wantCalls)
			}
			var he *tencent.HTTPStatusError
			if tt.wantErr && (!errors.As(err, &he) || he.StatusCode != tt.statuses[0]) {
				t.Errorf("error %v is not an HTTPStatusError %d", err, tt.statuses[0])
			}
		})
	}
}

func TestNetworkErrorIsRetried(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"Response":{"RoomInfo":{"RoomId":"r"}}}`)
	}))
	defer ts.Close()
	if _, err := newClient(t, ts.URL, nil).GetRoomInfo(context.Background(), "r"); err != nil || calls.Load() != 2 {
		t.Errorf("got %v after %d calls, want success after 2", err, calls.Load())
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	s := newFake(t)
	s.SetLatency(time.Minute)
	c := newClient(t, s.URL(), func(cfg *tencent.Config) { cfg.Timeout = 20 * time.Millisecond; cfg.MaxAttempts = 2 })
	_, err := c.GetRoomInfo(context.Background(), "r")
	if !errors.Is(err, context.DeadlineExceeded) || !tencent.IsRetryable(err) || s.Calls(tencent.RESTGetRoomInfo) != 2 {
		t.Errorf("got %v after %d calls, want a timeout after 2", err, s.Calls(tencent.RESTGetRoomInfo))
	}
}

func TestContextCancellation(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*faketencent.Server)
		edit  func(*tencent.Config)
		calls int // requests to wait for before cancelling; 0 cancels first
	}{
		{"before the call", nil, nil, 0},
		{"during a request", func(s *faketencent.Server) { s.SetLatency(time.Hour) }, nil, 1},
		{"during backoff", func(s *faketencent.Server) { s.FailNext(tencent.RESTGetRoomInfo, tencent.CodeInternal, 1) },
			func(cfg *tencent.Config) { cfg.BaseBackoff = time.Hour }, 1},
		{"waiting for the rate limiter", nil, func(cfg *tencent.Config) { cfg.DefaultRate = 1e-6 }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t)
			s.AddRoom(tencent.RoomInfo{RoomID: "r"})
			if tt.setup != nil {
				tt.setup(s)
			}
			c := newClient(t, s.URL(), tt.edit)
			ctx, cancel := context.WithCancel(context.Background())
			if tt.calls == 0 {
				cancel()
			}
			done := make(chan error, 1)
			go func() {
				var err error
				for range 2 { // a second call, for the rate limiter case
					if _, err = c.GetRoomInfo(ctx, "r"); err != nil {
						break
					}
				}
				done <- err
			}()
			waitFor(t, "the first request", func() bool { return s.Calls(tencent.RESTGetRoomInfo) >= tt.calls })
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("error %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("call did not return after cancellation")
			}
			if n := s.Calls(tencent.RESTGetRoomInfo); n != tt.calls {
				t.Errorf("%d calls, want %d", n, tt.calls)
			}
		})
	}
}

func addRooms(s *faketencent.Server, n int) {
	for i := range n {
		s.AddRoom(tencent.RoomInfo{RoomID: tencent.FlexString(fmt.Sprintf("room-%04d", i)), RoomType: tencent.RoomTypeLive})
	}
}

func TestListAllRooms(t *testing.T) {
	s := newFake(t)
	addRooms(s, 1000)
	c := newClient(t, s.URL(), nil)
	seen := map[tencent.FlexString]bool{}
	pages := 0
	err := c.ListAllRooms(context.Background(), func(page []tencent.RoomInfo) error {
		pages++
		if len(page) > tencent.MaxRoomListCount {
			t.Errorf("page %d has %d rooms", pages, len(page))
		}
		for _, ri := range page {
			seen[ri.RoomID] = true
		}
		return nil
	})
	if err != nil || pages != 50 || len(seen) != 1000 || s.Calls(tencent.RESTGetRoomList) != 50 {
		t.Errorf("got %v, %d pages, %d rooms, %d calls; want 50 pages of 1000 rooms", err, pages, len(seen), s.Calls(tencent.RESTGetRoomList))
	}
}

func TestListAllRoomsFailures(t *testing.T) {
	errStop := errors.New("stop")
	tests := []struct {
		name      string
		code      int // injected on page 3
		fnErr     error
		wantPages int
		wantCalls int
	}{
		{"permanent error on page 3", tencent.CodeInvalidParam, nil, 2, 3},
		{"transient error on page 3 exhausts retries", tencent.CodeInternal, nil, 2, 2 + 4},
		{"callback error stops paging", 0, errStop, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t)
			addRooms(s, 100)
			if tt.code != 0 {
				s.FailListPage(3, tt.code)
			}
			pages := 0
			err := newClient(t, s.URL(), nil).ListAllRooms(context.Background(), func([]tencent.RoomInfo) error {
				pages++
				return tt.fnErr
			})
			switch {
			case tt.fnErr != nil && !errors.Is(err, tt.fnErr):
				t.Errorf("error %v, want %v", err, tt.fnErr)
			case tt.code != 0 && (!tencent.IsCode(err, tt.code) || !strings.Contains(err.Error(), "page 3")):
				t.Errorf("error %v, want code %d on page 3", err, tt.code)
			}
			if pages != tt.wantPages || s.Calls(tencent.RESTGetRoomList) != tt.wantCalls {
				t.Errorf("%d pages, %d calls; want %d, %d", pages, s.Calls(tencent.RESTGetRoomList), tt.wantPages, tt.wantCalls)
			}
		})
	}
}

func TestListAllRoomsRejectsARepeatedCursor(t *testing.T) {
	_, url := startRecorder(t, func(string, int) (int, string) {
		return 200, `{"ActionStatus":"OK","ErrorCode":0,"Response":{"Next":"same","RoomList":[{"RoomId":"a"}]}}`
	})
	err := newClient(t, url, nil).ListAllRooms(context.Background(), func([]tencent.RoomInfo) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("error %v, want a repeated cursor", err)
	}
}

func TestSecretKeyRotation(t *testing.T) {
	s := newFake(t)
	s.AddRoom(tencent.RoomInfo{RoomID: "r"})
	var current atomic.Value
	current.Store(key)
	var reads atomic.Int32
	c := newClient(t, s.URL(), func(cfg *tencent.Config) {
		cfg.SecretKey = func() (string, error) { reads.Add(1); return current.Load().(string), nil }
	})
	ctx := context.Background()

	if _, err := c.GetRoomInfo(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	s.SetSecretKey("second-key")
	if _, err := c.GetRoomInfo(ctx, "r"); !tencent.IsCode(err, tencent.CodeUserSigInvalid) {
		t.Fatalf("with the old key: %v, want 70009", err)
	}
	current.Store("second-key")
	if _, err := c.GetRoomInfo(ctx, "r"); err != nil {
		t.Fatalf("after rotating the client's key: %v", err)
	}
	if calls := s.Calls(tencent.RESTGetRoomInfo); calls != 3 || int(reads.Load()) != calls {
		t.Errorf("%d calls, %d key reads; want 3 of each", calls, reads.Load())
	}

	current.Store("")
	if _, err := c.GetRoomInfo(ctx, "r"); err == nil || s.Calls(tencent.RESTGetRoomInfo) != 3 {
		t.Errorf("empty key: %v", err)
	}
	current.Store(key)
	c = newClient(t, s.URL(), func(cfg *tencent.Config) {
		cfg.SecretKey = func() (string, error) { return "", errors.New("key file missing") }
	})
	if _, err := c.GetRoomInfo(ctx, "r"); err == nil || !strings.Contains(err.Error(), "key file missing") {
		t.Errorf("unreadable key: %v", err)
	}
}

func TestUserSigCache(t *testing.T) {
	rec, url := startRecorder(t, nil)
	start := time.Unix(1700000000, 0)
	var now atomic.Int64
	now.Store(start.Unix())
	var current atomic.Value
	current.Store(key)
	c := newClient(t, url, func(cfg *tencent.Config) {
		cfg.Now = func() time.Time { return time.Unix(now.Load(), 0) }
		cfg.SecretKey = func() (string, error) { return current.Load().(string), nil }
	})

	steps := []struct {
		name    string
		advance time.Duration
		key     string
		fresh   bool
	}{
		{"first call signs", 0, key, true},
		{"second call reuses", time.Minute, key, false},
		{"an hour and a bit before expiry", 22*time.Hour + 58*time.Minute, key, false},
		{"within the last hour", 2 * time.Minute, key, true},
		{"reused again", time.Hour, key, false},
		{"rotated key", 0, "second-key", true},
	}
	var sigs []string
	signedAt := start
	for i, st := range steps {
		now.Add(int64(st.advance / time.Second))
		current.Store(st.key)
		if err := c.UpdateRoomInfo(context.Background(), tencent.RoomInfo{RoomID: "r"}); err != nil {
			t.Fatal(err)
		}
		reqs := rec.all()
		sig := reqs[len(reqs)-1].query["usersig"]
		at := time.Unix(now.Load(), 0)
		if i > 0 && (sig != sigs[i-1]) != st.fresh {
			t.Errorf("%s: new signature = %v, want %v", st.name, sig != sigs[i-1], st.fresh)
		}
		if st.fresh {
			signedAt = at
		}
		// Valid for 24 hours from signing, with the key of the moment.
		if err := tencent.VerifyUserSig(appID, st.key, admin, sig, signedAt.Add(24*time.Hour)); err != nil {
			t.Errorf("%s: %v", st.name, err)
		}
		if err := tencent.VerifyUserSig(appID, st.key, admin, sig, signedAt.Add(24*time.Hour+time.Second)); !errors.Is(err, tencent.ErrUserSigExpired) {
			t.Errorf("%s: a second after 24h: %v", st.name, err)
		}
		sigs = append(sigs, sig)
	}
}

func TestRateLimits(t *testing.T) {
	s := newFake(t)
	s.AddRoom(tencent.RoomInfo{RoomID: "r"})
	ctx := context.Background()
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 100*time.Millisecond) }

	// One request per 100 seconds: the second must wait, so a short deadline fails at once
	// without reaching the server, while other endpoints are unaffected.
	c := newClient(t, s.URL(), func(cfg *tencent.Config) { cfg.ListRate = 0.01; cfg.DefaultRate = 0.01 })
	if _, _, err := c.GetRoomList(ctx, "", 20); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := short()
	defer cancel()
	if _, _, err := c.GetRoomList(tctx, "", 20); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second list call: %v, want DeadlineExceeded", err)
	}
	if _, err := c.GetRoomInfo(ctx, "r"); err != nil {
		t.Errorf("get_room_info has its own limiter: %v", err)
	}
	if err := c.UpdateRoomInfo(ctx, tencent.RoomInfo{RoomID: "r"}); err != nil {
		t.Errorf("update_room_info has its own limiter: %v", err)
	}
	tctx, cancel = short()
	defer cancel()
	if _, err := c.GetRoomInfo(tctx, "r"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second get_room_info call: %v, want DeadlineExceeded", err)
	}
	if s.Calls(tencent.RESTGetRoomList) != 1 || s.Calls(tencent.RESTGetRoomInfo) != 1 {
		t.Errorf("calls: list %d, info %d; want 1 each", s.Calls(tencent.RESTGetRoomList), s.Calls(tencent.RESTGetRoomInfo))
	}
}

func TestListRateCountsRequests(t *testing.T) {
	s := newFake(t)
	c := newClient(t, s.URL(), func(cfg *tencent.Config) { cfg.ListRate = 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for {
		if _, _, err := c.GetRoomList(ctx, "", 20); err != nil {
			break
		}
	}
	// At 20/s with a burst of one, 300ms allows at most 1 + 6 requests.
	if n := s.Calls(tencent.RESTGetRoomList); n < 2 || n > 7 {
		t.Errorf("%d list calls in 300ms at 20/s", n)
	}
}

func TestDefaultListRateStaysUnderTencentLimit(t *testing.T) {
	s := faketencent.New(appID, admin, key) // documented 10/s limit
	defer s.Close()
	addRooms(s, 100)
	c := newClient(t, s.URL(), func(cfg *tencent.Config) { cfg.ListRate = 0 })
	if err := c.ListAllRooms(context.Background(), func([]tencent.RoomInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := s.Calls(tencent.RESTGetRoomList); n != 5 {
		t.Errorf("%d list calls for 5 pages: some were refused with 60007", n)
	}
}

func TestIsCodeAndIsRetryable(t *testing.T) {
	api := func(code int) error { return &tencent.APIError{Code: code, Command: "x"} }
	tests := []struct {
		name      string
		err       error
		codes     []int
		isCode    bool
		retryable bool
	}{
		{"nil", nil, []int{0}, false, false},
		{"plain error", errors.New("x"), []int{tencent.CodeInternal}, false, false},
		{"match", api(tencent.CodeInternal), []int{tencent.CodeRoomNotFound, tencent.CodeInternal}, true, true},
		{"wrapped", fmt.Errorf("ctx: %w", api(tencent.CodeRoomNotFound)), []int{tencent.CodeRoomNotFound}, true, false},
		{"no codes", api(tencent.CodeInternal), nil, false, true},
		{"HTTP 502", &tencent.HTTPStatusError{StatusCode: 502}, []int{502}, false, true},
		{"HTTP 403", &tencent.HTTPStatusError{StatusCode: 403}, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tencent.IsCode(tt.err, tt.codes...); got != tt.isCode {
				t.Errorf("IsCode = %v", got)
			}
			if got := tencent.IsRetryable(tt.err); got != tt.retryable {
				t.Errorf("IsRetryable = %v", got)
			}
		})
	}
}
