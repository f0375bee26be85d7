// Command manager runs the liveroom-operator in the role its --role flag selects: the
// internet-facing Tencent Cloud Live callback server (callback: every replica serves), the
// LiveRoom and RecordingPolicy reconcilers with the resync (controller: in the elected
// leader), or both in one process (all, for local development). The two roles run as two
// Deployments with two ServiceAccounts, so a compromised callback server cannot create Jobs.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/controllers"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/audience"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/lanes"
	"github.com/liveroom-io/liveroom-operator/internal/resync"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

// role is what one process runs.
type role string

const (
	// roleCallback is the callback server alone, in every replica.
	roleCallback role = "callback"
	// roleController is the reconcilers and the resync, in the elected leader.
	roleController role = "controller"
	// roleAll is both in one process, for local development.
	roleAll role = "all"
)

func (r role) servesCallbacks() bool { return r == roleCallback || r == roleAll }

// cache is what the role's manager caches (see internal/caches), and whether its cache
// holds LiveRooms trimmed to what the controller reads. operatorNamespace holds the
// callback-server replicas' Leases the controller watches.
func (r role) cache(operatorNamespace string) (opts cache.Options, trimsRooms bool) {
	switch r {
	case roleCallback:
		return caches.CallbackServer(operatorNamespace), false
	case roleController:
		return caches.WithReplicaLeases(caches.Controller(), operatorNamespace), true
	}
	return caches.WithProjections(caches.WithReplicaLeases(caches.All(), operatorNamespace), operatorNamespace), false
}
func (r role) reconciles() bool { return r == roleController || r == roleAll }

// other is the role whose settings this one refuses.
func (r role) other() role {
	switch r {
	case roleCallback:
		return roleController
	case roleController:
		return roleCallback
	}
	return ""
}

// roleFlags are the flags that configure one role only. A process of the other role
// refuses them rather than ignoring them: a setting that silently does nothing is a trap,
// and a secret must not reach a process that has no use for it.
var roleFlags = map[role][]string{
	roleCallback: {
		"callback-bind-address", "callback-max-connections", "callback-timeout",
		"lifecycle-api-qps", "lifecycle-api-burst", "lifecycle-concurrency", "count-writes-per-second", "count-write-interval",
	},
	roleController: {"leader-elect", "leader-election-namespace"},
}

// options are the manager's flags.
type options struct {
	role                role
	callbackBindAddress string
	callbackMaxConns    int
	callbackTimeout     time.Duration
	metricsBindAddress  string
	metricsSecure       bool
	metricsCertPath     string
	metricsCertName     string
	metricsCertKey      string
	enableHTTP2         bool
	probeBindAddress    string
	operatorNamespace   string
	pprofBindAddress    string
	leaderElect         bool
	leaderElectionNS    string
	kubeconfig          string
	kubeAPIQPS          float64
	kubeAPIBurst        int
	lifecycleQPS        float64
	lifecycleBurst      int
	lifecycleConcurrent int
	countBudget         float64
	countInterval       time.Duration
	zap                 zap.Options
}

func parseFlags(args []string) (*options, error) {
	o := &options{zap: zap.Options{Development: false}}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar((*string)(&o.role), "role", string(roleAll), "What this process runs: callback (the callback server, in every replica), controller (the reconcilers and the resync, leader-elected) or all (both: for local development).")
	fs.StringVar(&o.callbackBindAddress, "callback-bind-address", ":8082", "Address of the callback server (POST /callback).")
	fs.IntVar(&o.callbackMaxConns, "callback-max-connections", webhookserver.DefaultMaxConnections, "Connections the callback server serves at once; more wait to be accepted.")
	fs.DurationVar(&o.callbackTimeout, "callback-timeout", 1500*time.Millisecond, "Time to store a callback before answering 503 (Tencent waits 2s).")
	fs.StringVar(&o.metricsBindAddress, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to clients the API server authenticates and authorizes for GET /metrics (ClusterRole metrics-reader); false: plain HTTP without authentication.")
	fs.StringVar(&o.metricsCertPath, "metrics-cert-path", "", "Directory of the metrics server's certificate and key, re-read when they change (default: a self-signed certificate).")
	fs.StringVar(&o.metricsCertName, "metrics-cert-name", "tls.crt", "File name of the metrics server's certificate in --metrics-cert-path.")
	fs.StringVar(&o.metricsCertKey, "metrics-cert-key", "tls.key", "File name of the metrics server's key in --metrics-cert-path.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false, "Allow HTTP/2 on the metrics server; off by default against the HTTP/2 Stream Cancellation and Rapid Reset attacks.")
	fs.StringVar(&o.probeBindAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.StringVar(&o.operatorNamespace, "operator-namespace", "", "Namespace of the operator: the callback tokens the controller hands to the callback servers and the callback servers' Leases are there (default: the pod's namespace).")
	fs.StringVar(&o.pprofBindAddress, "pprof-bind-address", "0", "Address of Go's /debug/pprof profiles, for diagnosis (\"0\": off; never expose it beyond the pod).")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader among replicas for the reconcilers; the callback server runs in all.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to a kubeconfig; in-cluster configuration or $KUBECONFIG otherwise.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 100, "Queries per second to the Kubernetes API server from the reconcilers and the resync (the callback server's lanes have their own).")
	fs.Float64Var(&o.lifecycleQPS, "lifecycle-api-qps", 100, "Queries per second of the lifecycle lane: room creates, ends, settings, seats, owners and admins from callbacks, stored before they are answered.")
	fs.IntVar(&o.lifecycleBurst, "lifecycle-api-burst", 200, "Burst of the lifecycle lane's queries.")
	fs.IntVar(&o.lifecycleConcurrent, "lifecycle-concurrency", webhookserver.DefaultLifecycleConcurrency, "Room lifecycle writes in flight at once; a callback that could not be stored within --callback-timeout behind them is answered 503 at once.")
	fs.Float64Var(&o.countBudget, "count-writes-per-second", 20, "Budget of the count lane: writes of rooms' audience counts per second, all rooms together (member callbacks are acknowledged first and written under it).")
	fs.DurationVar(&o.countInterval, "count-write-interval", time.Second, "Least time between two audience-count writes of one room; longer when the budget is short.")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 200, "Burst of queries to the Kubernetes API server.")
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.operatorNamespace == "" {
		o.operatorNamespace = podNamespace()
	}
	if err := checkRole(fs, o.role); err != nil {
		return nil, err
	}
	if !o.metricsSecure && o.metricsCertPath != "" {
		return nil, errors.New("--metrics-cert-path needs --metrics-secure")
	}
	if o.lifecycleQPS <= 0 || o.lifecycleBurst <= 0 || o.lifecycleConcurrent <= 0 || o.countBudget <= 0 || o.countInterval <= 0 {
		return nil, errors.New("--lifecycle-api-qps, --lifecycle-api-burst, --lifecycle-concurrency, " +
			"--count-writes-per-second and --count-write-interval must be positive")
	}
	if o.callbackMaxConns <= 0 {
		return nil, errors.New("--callback-max-connections must be positive")
	}
	return o, nil
}

// checkRole refuses an unknown role, and the flags and secrets of the other role.
func checkRole(fs *flag.FlagSet, r role) error {
	switch r {
	case roleAll:
		return nil
	case roleCallback, roleController:
	default:
		return fmt.Errorf("--role must be %s, %s or %s, not %q", roleCallback, roleController, roleAll, r)
	}
	other := r.other()
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(roleFlags[other], f.Name) {
			errs = append(errs, fmt.Errorf("--%s configures --role=%s or all, not --role=%s", f.Name, other, r))
		}
	})
	return errors.Join(errs...)
}

// podNamespace is the namespace the manager runs in, or "default" outside a cluster.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}

func restConfig(o *options) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if o.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	} else {
		cfg, err = config.GetConfig()
	}
	if err != nil {
		return nil, err
	}
	// The manager's own client: the reconcilers' and the resync's lane, or in the
	// callback server the Events it records.
	lane := lanes.Controller
	if o.role == roleCallback {
		lane = lanes.Events
	}
	return lanes.RestConfig(cfg, lane, float32(o.kubeAPIQPS), o.kubeAPIBurst), nil
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(livev1.AddToScheme(s))
	return s
}

// run starts the manager and blocks until ctx ends or the manager fails.
func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	log := zap.New(zap.UseFlagOptions(&o.zap))
	ctrl.SetLogger(log)
	setupLog := log.WithName("setup")

	cfg, err := restConfig(o)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	metricsOpts, metricsCerts, err := metricsOptions(o)
	if err != nil {
		return err
	}
	cacheOpts, trimsRooms := o.role.cache(o.operatorNamespace)
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                  newScheme(),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeBindAddress,
		PprofBindAddress:        o.pprofBindAddress,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "liveroom-operator.live.liveroom.io",
		LeaderElectionNamespace: o.leaderElectionNS,
		// The leader steps down at once on shutdown, so a rolling update hands over fast.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOpts,
		// Secrets are read one by one from the API server, never cached: no role lists or
		// watches them.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if metricsCerts != nil {
		if err := mgr.Add(metricsCerts); err != nil {
			return err
		}
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("indexing LiveRooms: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("informers", func(r *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(r.Context()) {
			return errors.New("informer caches are not synced")
		}
		return nil
	}); err != nil {
		return err
	}

	// Callbacks and the resync write rooms through one store (one per app, see ForApp):
	// the same field manager, and in one process the same per-room locks.
	store := roomstore.New(roomstore.Config{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), CacheTrimsRooms: trimsRooms,
		FieldOwner: webhookserver.FieldOwner, Recorder: mgr.GetEventRecorder(webhookserver.FieldOwner),
	})
	if o.role.servesCallbacks() {
		if err := addCallbackServer(mgr, o, store, log); err != nil {
			return err
		}
	}
	if o.role.reconciles() {
		newStore := func(namespace string, sdkAppID int64) *roomstore.Store {
			return store.ForApp(namespace, sdkAppID)
		}
		if err := addControllers(mgr, o, newStore, log); err != nil {
			return err
		}
	}

	setupLog.Info("Starting manager", "role", o.role, "operatorNamespace", o.operatorNamespace, "leaderElection", o.leaderElect)
	return mgr.Start(ctx)
}

// metricsOptions serve metrics as kubebuilder's scaffold does: over HTTPS, with a
// self-signed certificate unless one is given, to clients whose bearer token the API
// server authenticates (TokenReview) and authorizes for GET /metrics (SubjectAccessReview).
func metricsOptions(o *options) (metricsserver.Options, *certwatcher.CertWatcher, error) {
	opts := metricsserver.Options{BindAddress: o.metricsBindAddress, SecureServing: o.metricsSecure}
	if !o.metricsSecure {
		return opts, nil, nil
	}
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	if !o.enableHTTP2 {
		// HTTP/1.1 only: HTTP/2 Stream Cancellation and Rapid Reset (GHSA-qppj-fm5r-hxr3,
		// GHSA-4374-p667-p6c8).
		opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	if o.metricsCertPath == "" {
		return opts, nil, nil
	}
	certs, err := certwatcher.New(filepath.Join(o.metricsCertPath, o.metricsCertName), filepath.Join(o.metricsCertPath, o.metricsCertKey))
	if err != nil {
		return opts, nil, fmt.Errorf("loading the metrics certificate: %w", err)
	}
	opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) { c.GetCertificate = certs.GetCertificate })
	return opts, certs, nil
}

// addCallbackServer adds the callback server, which serves every LiveApp in every
// replica, and its count lane.
func addCallbackServer(mgr manager.Manager, o *options, store *roomstore.Store, log logr.Logger) error {
	// Room lifecycle callbacks and audience counts each get a client of their own, so no
	// amount of member churn (or reconciler traffic) queues a room's creation behind it.
	lifecycle, err := laneClient(mgr, lanes.Lifecycle, float32(o.lifecycleQPS), o.lifecycleBurst)
	if err != nil {
		return err
	}
	countBurst := max(1, int(3*o.countBudget))
	counts, err := laneClient(mgr, lanes.Counts, float32(3*o.countBudget), countBurst)
	if err != nil {
		return err
	}
	countStore := store.Through(counts, nil)
	countLane := audience.New(audience.Config{
		WritesPerSecond: o.countBudget, Interval: o.countInterval, Replica: replicaName(),
		Metrics: audience.NewMetrics(metrics.Registry), Log: log.WithName("counts"),
	}, func(namespace string, sdkAppID int64) audience.Store { return countStore.ForApp(namespace, sdkAppID) })
	if err := mgr.Add(countLane); err != nil {
		return err
	}
	srv := webhookserver.New(webhookserver.Options{
		BindAddress:          o.callbackBindAddress,
		OperatorNamespace:    o.operatorNamespace,
		Replica:              replicaName(),
		Apps:                 mgr.GetCache(),
		Client:               mgr.GetClient(),
		MaxConnections:       o.callbackMaxConns,
		Timeout:              o.callbackTimeout,
		LifecycleConcurrency: o.lifecycleConcurrent,
	}, store.Through(lifecycle, nil), countLane, webhookserver.NewMetrics(metrics.Registry), log.WithName("callback"))
	if err := mgr.Add(srv); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("callback-server", srv.Ready)
}

// laneClient is a client that reads from the manager's cache and writes through a
// connection of its own, with its own rate limit (see internal/lanes).
func laneClient(mgr manager.Manager, lane string, qps float32, burst int) (client.Client, error) {
	return client.New(lanes.RestConfig(mgr.GetConfig(), lane, qps, burst), client.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		Cache: &client.CacheOptions{Reader: mgr.GetCache()},
	})
}

// replicaName names this process in the rooms' count-write marks: the pod's name, else the
// host's.
func replicaName() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	host, _ := os.Hostname()
	return host
}

// addControllers adds the LiveApp, LiveRoom and RecordingPolicy reconcilers and the
// per-app registry (REST clients and resyncs); all of them run in the elected leader only.
func addControllers(mgr manager.Manager, o *options, newStore func(namespace string, sdkAppID int64) *roomstore.Store, log logr.Logger) error {
	registry := &apps.Registry{
		NewStore:      newStore,
		Reader:        mgr.GetCache(),
		SecretReader:  mgr.GetAPIReader(),
		ResyncMetrics: resync.NewMetrics(metrics.Registry),
		Log:           log.WithName("apps"),
	}
	metrics.Registry.MustRegister(controllers.NewCacheMetrics(mgr.GetCache(), mgr.Elected(), log.WithName("metrics")))
	recorder := mgr.GetEventRecorder(controllers.FieldOwner)
	if err := (&controllers.LiveAppReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Recorder: recorder,
		Namespace: o.operatorNamespace, Registry: registry,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LiveApp controller: %w", err)
	}
	if err := (&controllers.LiveRoomReconciler{
		Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: recorder, Apps: registry,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LiveRoom controller: %w", err)
	}
	if err := (&controllers.RecordingPolicyReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the RecordingPolicy controller: %w", err)
	}
	return nil
}

func main() {
	if err := run(ctrl.SetupSignalHandler(), os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}
