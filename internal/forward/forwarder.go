// Package forward relays the Tencent callbacks the operator accepts to the app's own
// backend. Tencent allows one callback URL per app, so the operator's callback server
// sits in front of the backend and must pass every callback on: blocking "Before"
// callbacks synchronously within Tencent's 2 s deadline, after-event callbacks through a
// bounded queue with retries.
package forward

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Forwarder relays callbacks to Config.URL. Create it with New and run Start, which
// delivers what Enqueue accepts.
type Forwarder struct {
	cfg     Config
	base    *url.URL
	client  doer
	metrics *Metrics
	series  *series
	policy  Answer
	auth    []string // Authorization header from the URL's user info, if any

	queue   chan *delivery
	pending atomic.Int64  // deliveries held: queued, in flight or waiting to retry
	held    atomic.Int64  // their bytes, as delivery.size counts them
	idle    chan struct{} // signalled when pending drops to zero
	started atomic.Bool

	acceptMu sync.RWMutex // held for writing only to flip stopped
	stopped  bool

	retryMu sync.Mutex
	waiting map[*delivery]struct{} // retries whose timer has not fired yet
	drainBy time.Time              // set at shutdown: retries due later are dropped

	// Log throttles, one per kind of failure.
	overflowLog, stoppedLog, rejectLog, gaveUpLog, blockingLog throttle
}

// New checks cfg and builds a Forwarder. Metrics are registered on cfg.Registerer.
func New(cfg Config) (*Forwarder, error) {
	cfg, base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Forwarder{
		cfg:     cfg,
		base:    base,
		policy:  policyAnswer(cfg.FailPolicy),
		queue:   make(chan *delivery, cfg.QueueSize),
		idle:    make(chan struct{}, 1),
		waiting: make(map[*delivery]struct{}),
	}
	if u := base.User; u != nil {
		// The transport, unlike http.Client, does not turn user info into a header.
		pw, _ := u.Password()
		f.auth = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw))}
	}
	if cfg.Authorization != "" {
		f.auth = []string{cfg.Authorization}
	}
	if cfg.HTTPClient != nil {
		f.client = cfg.HTTPClient
	} else {
		f.client = transportDoer{newTransport(cfg.Timeout)}
	}
	f.metrics = newMetrics(func() float64 { return float64(f.pending.Load()) }, func() float64 { return float64(f.held.Load()) })
	f.series = f.metrics.resolve()
	if cfg.Registerer != nil {
		if err := f.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("registering forward metrics: %w", err)
		}
	}
	return f, nil
}

// Metrics returns the forwarder's collectors.
func (f *Forwarder) Metrics() *Metrics { return f.metrics }

// IsBlocking reports whether Tencent waits for the answer to the command, so that it must
// be forwarded with Forward rather than Enqueue.
func IsBlocking(command string) bool {
	return strings.Contains(command, ".CallbackBefore")
}

type doer interface {
	Do(*http.Request) (*http.Response, error)
}

// transportDoer sends requests straight to a transport. Without http.Client in between,
// redirects are not followed (a redirected POST would lose its body) and no header
// copies are made for them.
type transportDoer struct{ http.RoundTripper }

func (t transportDoer) Do(req *http.Request) (*http.Response, error) { return t.RoundTrip(req) }

// newTransport returns a keep-alive transport: a fresh connection per callback would add
// a handshake to every blocking answer.
func newTransport(timeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: timeout,
		DisableCompression:  true,
	}
}

var jsonType = []string{"application/json"}

// newRequest builds the POST to the backend. Tencent's query string is appended byte for
// byte, so the backend can check Sign itself.
func (f *Forwarder) newRequest(ctx context.Context, rawQuery string, body []byte) *http.Request {
	u := new(url.URL)
	*u = *f.base
	switch {
	case rawQuery == "":
	case u.RawQuery == "":
		u.RawQuery = rawQuery
	default:
		u.RawQuery += "&" + rawQuery
	}
	req := &http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Host:          u.Host,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": jsonType},
		Body:          http.NoBody,
		ContentLength: int64(len(body)),
	}
	if f.auth != nil {
		req.Header["Authorization"] = f.auth
	}
	if len(body) > 0 {
		req.Body = newPayload(body)
		// GetBody lets the transport resend when a kept-alive connection turns out closed.
		req.GetBody = func() (io.ReadCloser, error) { return newPayload(body), nil }
	}
	return req.WithContext(ctx)
}

// newPayload wraps a request body in types the transport knows to be in memory, so it
// writes headers and body together instead of flushing the headers first.
func newPayload(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// classify maps the result of one request to its outcome label.
func classify(ctx context.Context, status int, err error) outcome {
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
			(errors.As(err, &ne) && ne.Timeout()) {
			return outcomeTimeout
		}
		return outcomeError
	}
	switch {
	case status >= 200 && status < 300:
		return outcomeOK
	case status >= 500 || status == http.StatusTooManyRequests:
		return outcomeError
	}
	return outcomeRejected
}

func (f *Forwarder) observe(k kind, o outcome, start time.Time) {
	f.series.requests[k][o].Inc()
	f.series.duration[k].Observe(time.Since(start).Seconds())
}

// command is the CallbackCommand in Tencent's query string, for log lines.
func command(rawQuery string) string {
	q, _ := url.ParseQuery(rawQuery)
	return q.Get("CallbackCommand")
}
