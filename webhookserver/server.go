// Package webhookserver is the Tencent Cloud Live callback server: one endpoint for every
// LiveApp. It finds the app a callback is for by its SdkAppid, authenticates it with the
// app's tokens, decodes it, stores its effect in a LiveRoom of the app's namespace and
// only then answers Tencent.
package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/net/netutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/lanes"
	"github.com/liveroom-io/liveroom-operator/internal/logthrottle"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
)

// The callback server reads rooms from its cache, creates them and applies its fields.
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms/status,verbs=get;patch
// It reads LiveApps to know which app serves an SDKAppID, and writes their
// status.roomQuota when Tencent warns that an app nears its room quota.
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liveapps,verbs=get;list;watch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liveapps/status,verbs=get;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// In the operator's namespace only: the apps' projection Secrets, which hold their
// callback tokens, and this replica's Lease, which says which tokens it has loaded.
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=create;patch;delete

// FieldOwner is the server-side apply field manager of every callback write.
const FieldOwner = "liveroom-callback"

// MaxBodyBytes caps the body of a room callback; Tencent's are well under 8 KiB.
const MaxBodyBytes = 64 << 10

// MaxOtherBodyBytes caps the body of any other callback: the operator only counts and
// forwards those, so they get less room to push large bodies into the fan-out queue.
const MaxOtherBodyBytes = 16 << 10

// MaxSkewLimit bounds an app's spec.callback.maxSkew: Tencent's own window is one
// minute, and a longer one lets a captured Sign be used for longer.
const MaxSkewLimit = time.Hour

// DefaultMaxConnections is the default of Options.MaxConnections. Tencent's callbacks are
// short requests answered within 2 s: even a thousand callbacks a second at 100 ms each
// hold about a hundred connections, while a thousand idle connections cost about 8 MiB.
const DefaultMaxConnections = 1024

// DefaultIdleTimeout is how long a keep-alive connection may wait for its next request.
// Tencent opens new connections freely, so a short wait only frees idle sockets sooner.
const DefaultIdleTimeout = 20 * time.Second

// Options configure the callback server. Which apps it serves, with which tokens and
// fan-out, comes from LiveApps and the controller's projection Secrets, not from here.
type Options struct {
	BindAddress string
	// OperatorNamespace holds the apps' projection Secrets and the replicas' Leases.
	OperatorNamespace string
	// Replica names this process's Lease in OperatorNamespace: the pod's name.
	Replica string
	// Apps is where LiveApps (all namespaces) and the projection Secrets of
	// OperatorNamespace are read: the manager's cache, built with caches.CallbackServer.
	// Without it the server serves what ServeApps gives it.
	Apps cache.Cache
	// Client writes the replica's Lease and the apps' status.roomQuota (the manager's
	// client; it is not read through). Without it there is no Lease and room quota
	// warnings cannot be stored.
	Client client.Client
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
	// Forward tunes every app's fan-out (queue bounds, workers, retries); the URL,
	// timeout, fail policy and Authorization are each LiveApp's.
	Forward forward.Config
}

// Validate checks the options that cannot be defaulted.
func (o Options) Validate() error {
	if o.MaxConnections < 0 {
		return fmt.Errorf("callback max connections %d is negative", o.MaxConnections)
	}
	if o.IdleTimeout < 0 {
		return fmt.Errorf("callback idle timeout %s is negative", o.IdleTimeout)
	}
	if o.Apps != nil && o.OperatorNamespace == "" {
		return errors.New("the operator's namespace, where the apps' callback tokens are, is not set")
	}
	if o.Client != nil {
		if o.OperatorNamespace == "" {
			return errors.New("the operator's namespace, where the replicas' Leases are, is not set")
		}
		if errs := validation.IsDNS1123Subdomain(o.Replica); len(errs) > 0 {
			return fmt.Errorf("replica name %q cannot name its Lease (set POD_NAME): %s", o.Replica, strings.Join(errs, "; "))
		}
	}
	return nil
}

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
// real one, which writes them under a budget of its own, each room through its app's
// store.
type CountLane interface {
	Add(room audience.Room, delta, eventMillis int64) error
}

// Forwarder delivers callbacks to the app's backend: blocking ("Before") callbacks
// synchronously, with the backend's answer going back to Tencent, and after-event
// callbacks through a queue. *forward.Forwarder is the real one.
type Forwarder interface {
	Forward(ctx context.Context, rawQuery string, body []byte) forward.Answer
	Enqueue(rawQuery string, body []byte) bool
}

// Server is the callback server, a manager runnable that runs in every replica: one
// endpoint for every app. It keeps the table of served apps from its cache and this
// replica's Lease, and serves callbacks once the table is loaded.
type Server struct {
	opts    Options
	log     logr.Logger
	apps    *appTable
	counts  CountLane // the count lane: member changes acknowledged, then written
	quota   quotaWriter
	events  events.EventRecorder // Events on LiveApps; nil: none
	lease   *apps.ReplicaLease   // nil without Options.Client
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

// New builds a callback server: room lifecycle callbacks are stored through store (the
// lifecycle lane's; each app's rooms through store.ForApp) before they are answered, at
// most Options.LifecycleConcurrency writes at a time; member callbacks are answered once
// counts has them. store's Recorder, if set, also records the Events of LiveApps.
func New(opts Options, store *roomstore.Store, counts CountLane, metrics *Metrics, log logr.Logger) *Server {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	opts = opts.withDefaults()
	lifecycle := store.Through(store.Client, lanes.NewGate(opts.LifecycleConcurrency, metrics.LifecycleWait))
	s := newServer(opts, func(namespace string, sdkAppID int64) roomWriter {
		return lifecycle.ForApp(namespace, sdkAppID)
	}, counts, metrics, log)
	s.events = store.Recorder
	if opts.Client != nil {
		s.quota = clientQuota{opts.Client}
		s.lease = &apps.ReplicaLease{
			Client: opts.Client, Namespace: opts.OperatorNamespace, Name: opts.Replica, FieldOwner: FieldOwner,
			Loaded: s.apps.loadedTokens, Log: log.WithName("lease"),
		}
		s.apps.loadedChanged = s.lease.Changed
	}
	return s
}

// withDefaults fills in the options left zero.
func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = 1500 * time.Millisecond
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

// replayEntries bounds the deliveries the replay cache remembers, all apps together.
const replayEntries = 200000

func newServer(opts Options, storeFor func(namespace string, sdkAppID int64) roomWriter, counts CountLane, metrics *Metrics, log logr.Logger) *Server {
	opts = opts.withDefaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	s := &Server{
		opts:    opts,
		log:     log,
		apps:    newAppTable(log.WithName("apps"), metrics, storeFor, opts.Forward),
		counts:  counts,
		replay:  newReplayCache(replayEntries),
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

// ServeApps serves the LiveApps of list that serve their SDKAppID, with the tokens and
// Authorization of projections (the apps' projection Secrets), as the cache would give
// them: for a server without Options.Apps (tests, benchmarks). Fan-outs it starts run
// until ctx ends.
func (s *Server) ServeApps(ctx context.Context, list []livev1.LiveApp, projections []corev1.Secret) {
	byApp := map[types.UID]*corev1.Secret{}
	for i := range projections {
		byApp[types.UID(projections[i].Labels[apps.ProjectionAppLabel])] = &projections[i]
	}
	s.apps.update(ctx, list, func(uid types.UID) *corev1.Secret { return byApp[uid] })
}

// Start loads the served apps from the cache, keeps the replica's Lease, and serves
// until ctx ends; then it stops accepting and lets in-flight callbacks finish within
// ShutdownTimeout, so none is cut off after it was stored but before its answer, deletes
// the Lease and drains the apps' fan-outs.
func (s *Server) Start(ctx context.Context) error {
	if err := s.opts.Validate(); err != nil {
		return fmt.Errorf("callback server: %w", err)
	}
	// The fan-outs and the Lease outlive ctx: they stop after the last callback is served.
	background := context.WithoutCancel(ctx)
	forwardCtx, stopForwarding := context.WithCancel(background)
	defer stopForwarding()
	if s.opts.Apps != nil {
		watchCtx, stopWatching := context.WithCancel(ctx)
		defer stopWatching()
		watching, err := s.watchApps(watchCtx, forwardCtx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("callback server: %w", err)
		}
		defer func() {
			stopWatching()
			<-watching // no fan-out starts any more
			stopForwarding()
			s.apps.stopAll()
		}()
	}
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("callback server: %w", err)
	}
	leaseCtx, stopLease := context.WithCancel(background)
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		if s.lease != nil {
			_ = s.lease.Start(leaseCtx)
		}
	}()
	defer func() { stopLease(); <-leaseDone }()

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
	s.addr.Store(ln.Addr())
	s.listening.Store(true)
	s.log.Info("Serving Tencent callbacks", "address", ln.Addr().String(), "apps", s.apps.size(),
		"replica", s.opts.Replica, "maxConnections", s.opts.MaxConnections)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.listening.Store(false)
		return err
	case <-ctx.Done():
	}
	s.listening.Store(false)
	shutdownCtx, cancel := context.WithTimeout(background, s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("callback server shutdown: %w", err)
	}
	s.log.Info("Stopped serving Tencent callbacks")
	return nil
}
