package forward

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestIsBlocking(t *testing.T) {
	for cmd, want := range map[string]bool{
		"Live.CallbackBeforeSendGift":      true,
		"Group.CallbackBeforeSendMsg":      true,
		"Live.CallbackAfterCreateRoom":     false,
		"Mic.CallbackAfterSeatInfoChanged": false,
		"Group.CallbackAfterSendMsg":       false,
		"":                                 false,
	} {
		if got := IsBlocking(cmd); got != want {
			t.Errorf("IsBlocking(%q) = %v, want %v", cmd, got, want)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no URL":          {},
		"ftp":             {URL: "ftp://backend/cb"},
		"no host":         {URL: "http:///cb"},
		"fragment":        {URL: "http://backend/cb#x"},
		"policy":          {URL: "http://backend/cb", FailPolicy: "maybe"},
		"negative":        {URL: "http://backend/cb", Timeout: -time.Second},
		"negative worker": {URL: "http://backend/cb", Workers: -1},
		"negative bytes":  {URL: "http://backend/cb", QueueBytes: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	f, err := New(Config{URL: "https://backend/cb"})
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.Timeout != DefaultTimeout || f.cfg.FailPolicy != PolicyAllow || f.cfg.QueueSize != DefaultQueueSize ||
		f.cfg.QueueBytes != DefaultQueueBytes || f.cfg.Workers != DefaultWorkers || f.cfg.DrainTimeout != DefaultDrainTimeout {
		t.Errorf("defaults not applied: %+v", f.cfg)
	}
}

func TestForwardPassesAnswerThrough(t *testing.T) {
	query := strings.Replace(tencentQuery, "Live.CallbackAfterCreateRoom", "Live.CallbackBeforeSendGift", 1)
	body := []byte(`{"CallbackCommand":"Live.CallbackBeforeSendGift","RoomId":"r1","GiftWater":{"GiftId":"g","Count":1}}`)
	cases := []struct {
		name, contentType, answer string
		status                    int
	}{
		{"approve", "application/json", `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`, 200},
		{"reject", "application/json; charset=utf-8", `{ "ActionStatus": "OK", "ErrorInfo": "no coins", "ErrorCode": 1 }`, 200},
		{"http error", "text/plain", "backend broke\n", 503},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", c.contentType)
				w.Header().Set("X-Other", "not forwarded")
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.answer)
			})
			f := newForwarder(t, Config{URL: b.URL + "/cb?app=1", FailPolicy: PolicyDeny})
			a := f.Forward(context.Background(), query, body)
			if a.Status != c.status || string(a.Body) != c.answer || !a.FromBackend {
				t.Errorf("answer = %d %q fromBackend=%v, want %d %q from the backend", a.Status, a.Body, a.FromBackend, c.status, c.answer)
			}
			if len(a.Header) != 1 || a.Header.Get("Content-Type") != c.contentType {
				t.Errorf("answer header = %v, want Content-Type %q only", a.Header, c.contentType)
			}
			got := b.requests()
			if len(got) != 1 {
				t.Fatalf("backend got %d requests, want 1", len(got))
			}
			r := got[0]
			if r.method != http.MethodPost || r.rawQuery != "app=1&"+query || !bytes.Equal(r.body, body) || r.contentType != "application/json" {
				t.Errorf("backend got %s ?%s %q (%s), want POST ?app=1&%s %q (application/json)", r.method, r.rawQuery, r.body, r.contentType, query, body)
			}
			want := OutcomeOK
			if c.status >= 500 {
				want = OutcomeError
			}
			if n := requests(f, KindBlocking, want); n != 1 {
				t.Errorf("requests{blocking,%s} = %d, want 1", want, n)
			}
		})
	}
}

func TestForwardSendsURLUserInfo(t *testing.T) {
	b := newBackend(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "app" || p != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		answerOK(n, w, r)
	})
	f := newForwarder(t, Config{URL: strings.Replace(b.URL, "://", "://app:s3cret@", 1)})
	if a := f.Forward(context.Background(), tencentQuery, []byte(`{}`)); a.Status != http.StatusOK {
		t.Errorf("backend answered %d %q, want 200 with the URL's credentials", a.Status, a.Body)
	}
}

func TestNewRegistersMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if _, err := New(Config{URL: "http://backend/cb", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{URL: "http://backend/cb", Registerer: reg}); err == nil {
		t.Error("a second forwarder registered the same metrics")
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Label children are created up front: 2 kinds × 4 outcomes, 2 histograms, 2 gauges, 4 reasons.
	if n != 16 {
		t.Errorf("registry holds %d series, want 16", n)
	}
}

func TestForwardReplyWritesAnswer(t *testing.T) {
	rec := httptest.NewRecorder()
	a := Answer{Status: 202, Body: []byte(`{"x":1}`), Header: http.Header{"Content-Type": {"application/json"}}}
	if err := a.Reply(rec); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 202 || rec.Body.String() != `{"x":1}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("reply = %d %q %v", rec.Code, rec.Body, rec.Header())
	}
}

func TestForwardFailPolicy(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const margin = 200 * time.Millisecond
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newBackend(t, hang(release))
	huge := newBackend(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(make([]byte, maxAnswerBytes+1))
	})
	backends := []struct {
		name, url, outcome string
	}{
		{"backend down", closedURL(t), OutcomeError},
		{"backend too slow", slow.URL, OutcomeTimeout},
		{"answer too large", huge.URL, OutcomeError},
	}
	policies := map[string]string{
		PolicyAllow: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`,
		PolicyDeny:  `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"backend unavailable"}`,
	}
	for _, be := range backends {
		for policy, want := range policies {
			t.Run(be.name+"/"+policy, func(t *testing.T) {
				f := newForwarder(t, Config{URL: be.url, Timeout: timeout, FailPolicy: policy})
				began := time.Now()
				a := f.Forward(context.Background(), tencentQuery, []byte(`{}`))
				took := time.Since(began)
				if a.Status != http.StatusOK || string(a.Body) != want || a.FromBackend || a.Header.Get("Content-Type") != "application/json" {
					t.Errorf("answer = %d %q fromBackend=%v, want 200 %q from the policy", a.Status, a.Body, a.FromBackend, want)
				}
				if took > timeout+margin {
					t.Errorf("answered after %v, want within %v", took, timeout+margin)
				}
				if n := requests(f, KindBlocking, be.outcome); n != 1 {
					t.Errorf("requests{blocking,%s} = %d, want 1", be.outcome, n)
				}
			})
		}
	}
}

func TestForwardReusesConnections(t *testing.T) {
	var conns atomic.Int32
	b := newBackendWith(t, answerOK, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	f := newForwarder(t, Config{URL: b.URL})
	for range 20 {
		if a := f.Forward(context.Background(), tencentQuery, []byte(`{}`)); !a.FromBackend {
			t.Fatalf("answer not from backend: %q", a.Body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential callbacks opened %d connections, want 1", n)
	}
}
