package tencent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// closedURL is the base URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// hijack takes the connection from the server and writes raw to it before closing it.
func hijack(raw string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString(raw)
		buf.Flush()
		conn.Close()
	}
}

// quotingTransport fails every request with an error that quotes its URL, as a
// careless proxy or middleware might.
type quotingTransport struct{}

func (quotingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, &quotingError{url: req.URL.String()}
}

type quotingError struct{ url string }

func (e *quotingError) Error() string   { return "gateway timed out calling " + e.url }
func (e *quotingError) Timeout() bool   { return true }
func (e *quotingError) Temporary() bool { return true }
func (e *quotingError) Is(target error) bool {
	return target == context.DeadlineExceeded
}

func TestErrorsNeverQuoteTheUserSig(t *testing.T) {
	now := time.Now()
	sig, err := tencent.GenUserSig(appID, key, admin, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	tlsServer := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsServer.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes fail on purpose
	tlsServer.StartTLS()
	t.Cleanup(tlsServer.Close)
	slow := newFake(t)
	slow.SetLatency(time.Minute)
	fast := newFake(t)
	fast.AddRoom(tencent.RoomInfo{RoomID: "r"})

	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.Is(err, context.DeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
	}
	tests := []struct {
		name    string
		baseURL string
		edit    func(*tencent.Config)
		ctx     func() (context.Context, context.CancelFunc)
		// mentions is what the error must still say about its cause.
		mentions []string
		check    func(error) bool
	}{
		{name: "unreachable host", baseURL: closedURL(t),
			mentions: []string{"tencent get_room_info", "/v4/live_engine_http_srv/get_room_info", "connection refused"},
			check: func(err error) bool {
				var ue *url.Error
				return tencent.IsRetryable(err) && errors.As(err, &ue)
			}},
		{name: "connection closed before the answer", baseURL: serve(t, hijack("")),
			mentions: []string{"/v4/live_engine_http_srv/get_room_info", "EOF"}, check: tencent.IsRetryable},
		{name: "connection closed mid-answer", baseURL: serve(t, hijack("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"ActionStatus\":")),
			mentions: []string{"unexpected EOF"}, check: tencent.IsRetryable},
		{name: "TLS failure", baseURL: tlsServer.URL,
			mentions: []string{"/v4/live_engine_http_srv/get_room_info", "certificate"}, check: tencent.IsRetryable},
		{name: "per-attempt timeout", baseURL: slow.URL(),
			edit:     func(c *tencent.Config) { c.Timeout = 20 * time.Millisecond; c.MaxAttempts = 2 },
			mentions: []string{"/v4/live_engine_http_srv/get_room_info"},
			check:    func(err error) bool { return isTimeout(err) && tencent.IsRetryable(err) }},
		{name: "cancelled", baseURL: slow.URL(),
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			},
			check: func(err error) bool { return errors.Is(err, context.Canceled) }},
		{name: "rate limit", baseURL: fast.URL(),
			edit: func(c *tencent.Config) { c.DefaultRate = 1e-6 },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Millisecond)
			},
			check: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{name: "transport error quoting the URL", baseURL: "https://adminapisgp.im.qcloud.com",
			edit:     func(c *tencent.Config) { c.HTTPClient = &http.Client{Transport: quotingTransport{}}; c.MaxAttempts = 2 },
			mentions: []string{"gateway timed out", "adminapisgp.im.qcloud.com/v4/live_engine_http_srv/get_room_info"},
			check:    func(err error) bool { return isTimeout(err) && tencent.IsRetryable(err) }},
		{name: "HTTP error page echoing the request", baseURL: serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "upstream failed for %s (signature %s)", r.URL.RequestURI(), r.URL.Query().Get("usersig"))
		}), edit: func(c *tencent.Config) { c.MaxAttempts = 1 },
			mentions: []string{"HTTP 502", "upstream failed for /v4/live_engine_http_srv/get_room_info"},
			check: func(err error) bool {
				var he *tencent.HTTPStatusError
				return errors.As(err, &he) && he.StatusCode == http.StatusBadGateway && tencent.IsRetryable(err)
			}},
		{name: "API error echoing the signature", baseURL: serve(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"ActionStatus":"FAIL","ErrorCode":70009,"ErrorInfo":"signature %s does not verify","RequestId":"%s"}`,
				r.URL.Query().Get("usersig"), r.URL.RawQuery)
		}),
			mentions: []string{"70009", "does not verify"},
			check:    func(err error) bool { return tencent.IsCode(err, tencent.CodeUserSigInvalid) }},
		{name: "answer that is not JSON", baseURL: serve(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "<html>%s</html>", r.URL.RequestURI())
		}), mentions: []string{"not a JSON envelope"}, check: func(err error) bool { return !tencent.IsRetryable(err) }},
		{name: "payload quoting the request", baseURL: serve(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"ActionStatus":"OK","ErrorCode":0,"Response":{"RoomInfo":{"RoomId":["usersig=%s"]}}}`, r.URL.Query().Get("usersig"))
		}), mentions: []string{"decoding the response"}, check: func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.baseURL, func(cfg *tencent.Config) {
				cfg.Now = func() time.Time { return now }
				if tt.edit != nil {
					tt.edit(cfg)
				}
			})
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			if tt.name == "rate limit" {
				if _, err := c.GetRoomInfo(context.Background(), "r"); err != nil { // takes the one token
					t.Fatal(err)
				}
			}
			_, err := c.GetRoomInfo(ctx, "r")
			if err == nil {
				t.Fatal("no error")
			}
			text := err.Error()
			t.Log(text)
			for _, secret := range []string{"usersig", "identifier=", "sdkappid=", "random=", sig, url.QueryEscape(sig), sig[:16]} {
				if strings.Contains(strings.ToLower(text), strings.ToLower(secret)) {
					t.Errorf("error text has %q: %s", secret, text)
				}
			}
			for _, m := range tt.mentions {
				if !strings.Contains(text, m) {
					t.Errorf("error text does not mention %q: %s", m, text)
				}
			}
			if !tt.check(err) {
				t.Errorf("error %v (%T) lost its kind", err, err)
			}
		})
	}
}
