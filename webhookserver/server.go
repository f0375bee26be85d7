// Package webhookserver is the Tencent Cloud Live callback server: it authenticates each
// callback, decodes it, stores its effect in a LiveRoom and only then answers Tencent.
package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/net/netutil"

	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/lanes"
	"github.com/liveroom-io/liveroom-operator/internal/logthrottle"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
)

// The callback server reads rooms from its cache, creates them and applies its fields.
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms/status,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// FieldOwner is the server-side apply field manager of every callback write.
const FieldOwner = "liveroom-callback"

// MaxBodyBytes caps the body of a room callback; Tencent's are well under 8 KiB.
const MaxBodyBytes = 64 << 10

// MaxOtherBodyBytes caps the body of any other callback: the operator only counts and
// forwards those, so they get less room to push large bodies into the fan-out queue.
const MaxOtherBodyBytes = 16 << 10

// MaxSkewLimit bounds Options.MaxSkew: Tencent's own window is one minute, and a longer
// one lets a captured Sign be used for longer.
const MaxSkewLimit = time.Hour

// DefaultMaxConnections is the default of Options.MaxConnections. Tencent's callbacks are
// short requests answered within 2 s: even a thousand callbacks a second at 100 ms each
// hold about a hundred connections, while a thousand idle connections cost about 8 MiB.
const DefaultMaxConnections = 1024

// DefaultIdleTimeout is how long a keep-alive connection may wait for its next request.
// Tencent opens new connections freely, so a short wait only frees idle sockets sooner.
const DefaultIdleTimeout = 20 * time.Second

// Options configure the callback server.
type Options struct {
	BindAddress string
	SDKAppID    int64
	Namespace   string
	// Tokens are the ones Sign is checked against. Without any, callbacks are refused
	// unless AllowUnsigned is set.
	Tokens        *Tokens
	AllowUnsigned bool
	// MaxSkew is the accepted distance between RequestTime and now, at most MaxSkewLimit;
	// 0 means one minute.
	MaxSkew time.Duration
	// MaxConnections caps the connections served at once; further ones wait to be
	// accepted. 0 means DefaultMaxConnections.
	MaxConnections int
	// IdleTimeout closes keep-alive connections idle that long; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Timeout bounds the time to store one callback; Tencent waits 2 s.
	Timeout time.Duration
	// LifecycleConcurrency bounds the room lifecycle writes in flight; callbacks that
	// could not be stored within Timeout behind them are refused at once. 0 means
	// DefaultLifecycleConcurrency.
	LifecycleConcurrency int
	// MemberAdmission is the number of callbacks in flight above which member callbacks
	// are refused, so that room lifecycle callbacks are still admitted under overload.
	// 0 means DefaultMemberAdmission.
	MemberAdmission int
	// ShutdownTimeout bounds how long in-flight callbacks may finish on shutdown.
	ShutdownTimeout time.Duration
	// Forwarder, if set, delivers every accepted callback to the app's own backend too.
	Forwarder Forwarder
}

// Validate checks the options that cannot be defaulted.
func (o Options) Validate() error {
	if o.MaxSkew < 0 || o.MaxSkew > MaxSkewLimit {
		return fmt.Errorf("callback max skew %s is outside (0, %s]", o.MaxSkew, MaxSkewLimit)
	}
	if o.MaxConnections < 0 {
		return fmt.Errorf("callback max connections %d is negative", o.MaxConnections)
	}
	if o.IdleTimeout < 0 {
		return fmt.Errorf("callback idle timeout %s is negative", o.IdleTimeout)
	}
	if !o.signed() && !o.AllowUnsigned {
		return errors.New("no callback token configured: set --callback-token-file or LIVEROOM_CALLBACK_TOKENS, or accept unsigned callbacks explicitly with --callback-allow-unsigned")
	}
	return nil
}

func (o Options) signed() bool { return o.Tokens != nil && o.Tokens.Enabled() }

// Defaults of Options.
const (
	// DefaultLifecycleConcurrency lets a few dozen room writes wait on the API server at
	// once: enough to keep it busy, few enough that a slow server is noticed at once.
	DefaultLifecycleConcurrency = 32
	// DefaultMemberAdmission is well above what a healthy server has in flight (member
	// callbacks are answered in about a millisecond).
	DefaultMemberAdmission = 512
)

// roomWriter stores room mutations; *roomstore.Store is the real one.
type roomWriter interface {
	Mutate(ctx context.Context, roomID, origin string, m roomstate.Mutation) (roomstore.Result, error)
}

// CountLane takes member-count changes once they are acknowledged; *audience.Lane is the
// real one, which writes them under a budget of its own.
type CountLane interface {
	Add(roomID string, delta, eventMillis int64) error
}

// Forwarder delivers callbacks to the app's backend: blocking ("Before") callbacks
// synchronously, with the backend's answer going back to Tencent, and after-event
// callbacks through a queue. *forward.Forwarder is the real one.
type Forwarder interface {
	Forward(ctx context.Context, rawQuery string, body []byte) forward.Answer
	Enqueue(rawQuery string, body []byte) bool
}

// Server is the callback server, a manager runnable that runs in every replica.
type Server struct {
	opts    Options
	log     logr.Logger
	store   roomWriter // the lifecycle lane: room changes stored before they are acknowledged
	counts  CountLane  // the count lane: member changes acknowledged, then written
	replay  *replayCache
	metrics *Metrics
	now     func() time.Time
	handler http.Handler

	// Log throttles: rejections come from outside and may come in floods.
	rejectLog, notStoredLog *logthrottle.Throttle

	inflight  atomic.Int64
	listening atomic.Bool
	addr      atomic.Value // net.Addr once listening
}

// New builds a callback server: room lifecycle callbacks are stored through store
// before they are answered, at most Options.LifecycleConcurrency writes at a time; member
// callbacks are answered once counts has them.
func New(opts Options, store *roomstore.Store, counts CountLane, metrics *Metrics, log logr.Logger) *Server {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	opts = opts.withDefaults()
	gate := lanes.NewGate(opts.LifecycleConcurrency, metrics.LifecycleWait)
	return newServer(opts, store.Through(store.Client, gate), counts, metrics, log)
}

// withDefaults fills in the options left zero.
func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = 1500 * time.Millisecond
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = time.Minute
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.LifecycleConcurrency == 0 {
		o.LifecycleConcurrency = DefaultLifecycleConcurrency
	}
	if o.MemberAdmission == 0 {
		o.MemberAdmission = DefaultMemberAdmission
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 15 * time.Second
	}
	return o
}

func newServer(opts Options, store roomWriter, counts CountLane, metrics *Metrics, log logr.Logger) *Server {
	opts = opts.withDefaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	s := &Server{
		opts:    opts,
		log:     log,
		store:   store,
		counts:  counts,
		replay:  newReplayCache(2*opts.MaxSkew, 200000),
		metrics: metrics,
		now:     time.Now,
	}
	s.throttleLogs(logInterval)
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", s.serveCallback)
	s.handler = mux
	return s
}

// throttleLogs bounds rejection and not-stored lines to logBurst per interval each.
func (s *Server) throttleLogs(interval time.Duration) {
	s.rejectLog = logthrottle.New(logBurst, interval).WithSummary(func(n int64) {
		s.log.Info("Rejected callbacks not logged", "count", n, "interval", interval.String())
	})
	s.notStoredLog = logthrottle.New(logBurst, interval).WithSummary(func(n int64) {
		s.log.Info("Callbacks not stored and not logged", "count", n, "interval", interval.String())
	})
}

// Handler is the server's HTTP handler, for tests that bring their own listener.
func (s *Server) Handler() http.Handler { return s.handler }

// NeedLeaderElection is false: every replica serves callbacks.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr is the address the server listens on, once it does.
func (s *Server) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// Ready is a readiness check: ready once the server listens.
func (s *Server) Ready(*http.Request) error {
	if !s.listening.Load() {
		return errors.New("callback server is not listening yet")
	}
	return nil
}

// Start serves until ctx ends, then stops accepting and lets in-flight callbacks finish
// within ShutdownTimeout, so none is cut off after it was stored but before its answer.
func (s *Server) Start(ctx context.Context) error {
	if err := s.opts.Validate(); err != nil {
		return fmt.Errorf("callback server: %w", err)
	}
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("callback server: %w", err)
	}
	// Connections past the limit wait in the listen backlog until one closes.
	ln = netutil.LimitListener(ln, s.opts.MaxConnections)
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
	if s.opts.Tokens != nil {
		go func() {
			if err := s.opts.Tokens.Watch(ctx, s.log, s.metrics); err != nil {
				s.log.Error(err, "Token file watch stopped")
			}
		}()
	}
	s.addr.Store(ln.Addr())
	s.listening.Store(true)
	s.log.Info("Serving Tencent callbacks", "address", ln.Addr().String(), "sdkAppId", s.opts.SDKAppID,
		"namespace", s.opts.Namespace, "signed", s.opts.signed(), "maxConnections", s.opts.MaxConnections)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.listening.Store(false)
		return err
	case <-ctx.Done():
	}
	s.listening.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("callback server shutdown: %w", err)
	}
	s.log.Info("Stopped serving Tencent callbacks")
	return nil
}
