// Command manager runs the liveroom-operator: the Tencent Cloud Live callback server in
// every replica and, in the elected leader, the LiveRoom and RecordingPolicy reconcilers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/controllers"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
	"github.com/liveroom-io/liveroom-operator/internal/resync"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/webhookserver"
)

// options are the manager's flags.
type options struct {
	sdkAppID            int64
	roomNamespace       string
	callbackBindAddress string
	callbackTokenFile   string
	allowUnsigned       bool
	callbackMaxSkew     time.Duration
	callbackMaxConns    int
	callbackTimeout     time.Duration
	endedRoomTTL        time.Duration
	metricsBindAddress  string
	probeBindAddress    string
	leaderElect         bool
	leaderElectionNS    string
	kubeconfig          string
	tencentAPIURL       string
	tencentAdminUser    string
	tencentKeyFile      string
	resyncInterval      time.Duration
	forwardURL          string
	forwardTimeout      time.Duration
	forwardFailPolicy   string
	kubeAPIQPS          float64
	kubeAPIBurst        int
	zap                 zap.Options
}

func parseFlags(args []string) (*options, error) {
	o := &options{zap: zap.Options{Development: false}}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.Int64Var(&o.sdkAppID, "sdk-app-id", 0, "The Tencent SDKAppID whose callbacks are accepted (required).")
	fs.StringVar(&o.roomNamespace, "room-namespace", "", "Namespace of the LiveRooms that callbacks create (default: the pod's namespace, else \"default\").")
	fs.StringVar(&o.callbackBindAddress, "callback-bind-address", ":8082", "Address of the callback server (POST /callback).")
	fs.StringVar(&o.callbackTokenFile, "callback-token-file", "", "File of callback tokens, one per line; re-read when it changes, keeping the previous tokens if it holds none. LIVEROOM_CALLBACK_TOKENS adds tokens. Required unless --callback-allow-unsigned.")
	fs.BoolVar(&o.allowUnsigned, "callback-allow-unsigned", false, "Accept unsigned callbacks when no callback token is configured (anyone who can reach the callback endpoint can then write rooms).")
	fs.DurationVar(&o.callbackMaxSkew, "callback-max-skew", time.Minute, "Accepted distance between a callback's RequestTime and now, at most 1h.")
	fs.IntVar(&o.callbackMaxConns, "callback-max-connections", webhookserver.DefaultMaxConnections, "Connections the callback server serves at once; more wait to be accepted.")
	fs.DurationVar(&o.callbackTimeout, "callback-timeout", 1500*time.Millisecond, "Time to store a callback before answering 503 (Tencent waits 2s).")
	fs.DurationVar(&o.endedRoomTTL, "ended-room-ttl", 24*time.Hour, "How long an ended room discovered by callback or resync is kept before it is deleted.")
	fs.StringVar(&o.metricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.StringVar(&o.probeBindAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader among replicas for the reconcilers; the callback server runs in all.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	fs.StringVar(&o.tencentAPIURL, "tencent-api-url", "https://adminapisgp.im.qcloud.com", "Tencent REST API host of the app's region.")
	fs.StringVar(&o.tencentAdminUser, "tencent-admin-user", "administrator", "App administrator account the REST API is called as.")
	fs.StringVar(&o.tencentKeyFile, "tencent-secret-key-file", "", "File holding the app's secret key, re-read when it changes; LIVEROOM_TENCENT_SECRET_KEY may give it instead. Without a key the operator runs callback-only: no resync, declared rooms are not created in Tencent.")
	fs.DurationVar(&o.resyncInterval, "resync-interval", 5*time.Minute, "How often the room list is compared with Tencent's, to repair rooms whose callbacks were lost.")
	fs.StringVar(&o.forwardURL, "forward-url", "", "The app backend's callback URL: every accepted callback is delivered there too (blocking ones synchronously, with the backend's answer returned to Tencent).")
	fs.DurationVar(&o.forwardTimeout, "forward-timeout", 1500*time.Millisecond, "Deadline of one delivery to --forward-url.")
	fs.StringVar(&o.forwardFailPolicy, "forward-fail-policy", "allow", "Answer to a blocking callback when the backend fails or is late: allow (ErrorCode 0) or deny (ErrorCode 1).")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to a kubeconfig; in-cluster configuration or $KUBECONFIG otherwise.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 100, "Queries per second to the Kubernetes API server.")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 200, "Burst of queries to the Kubernetes API server.")
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.sdkAppID <= 0 {
		return nil, errors.New("--sdk-app-id is required")
	}
	if o.roomNamespace == "" {
		o.roomNamespace = podNamespace()
	}
	if o.resyncInterval <= 0 {
		return nil, errors.New("--resync-interval must be positive")
	}
	if o.callbackMaxSkew <= 0 || o.callbackMaxSkew > webhookserver.MaxSkewLimit {
		return nil, fmt.Errorf("--callback-max-skew must be positive and at most %s (Tencent's window is 1m)", webhookserver.MaxSkewLimit)
	}
	if o.callbackMaxConns <= 0 {
		return nil, errors.New("--callback-max-connections must be positive")
	}
	return o, nil
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
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	return cfg, nil
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
	tokens, err := callbackTokens(o)
	if err != nil {
		return err
	}
	if !tokens.Enabled() {
		setupLog.Info("WARNING: --callback-allow-unsigned and no callback token: unsigned callbacks are accepted. Set --callback-token-file or LIVEROOM_CALLBACK_TOKENS and enable the token in Tencent (set_callback_token)")
	}

	cfg, err := restConfig(o)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                  newScheme(),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsBindAddress},
		HealthProbeBindAddress:  o.probeBindAddress,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "liveroom-operator.live.liveroom.io",
		LeaderElectionNamespace: o.leaderElectionNS,
		// The leader steps down at once on shutdown, so a rolling update hands over fast.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("indexing LiveRooms: %w", err)
	}

	var forwarder webhookserver.Forwarder
	if o.forwardURL != "" {
		f, err := forward.New(forward.Config{
			URL: o.forwardURL, Timeout: o.forwardTimeout, FailPolicy: o.forwardFailPolicy,
			Log: log.WithName("forward"), Registerer: metrics.Registry,
		})
		if err != nil {
			return err
		}
		if err := mgr.Add(f); err != nil {
			return err
		}
		forwarder = f
	}
	callbackOpts := webhookserver.Options{
		BindAddress:    o.callbackBindAddress,
		SDKAppID:       o.sdkAppID,
		Namespace:      o.roomNamespace,
		Tokens:         tokens,
		AllowUnsigned:  o.allowUnsigned,
		MaxSkew:        o.callbackMaxSkew,
		MaxConnections: o.callbackMaxConns,
		Timeout:        o.callbackTimeout,
		Forwarder:      forwarder,
	}
	store := webhookserver.NewStore(callbackOpts, mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder(webhookserver.FieldOwner))
	srv := webhookserver.NewWithStore(callbackOpts, store, webhookserver.NewMetrics(metrics.Registry), log.WithName("callback"))
	if err := mgr.Add(srv); err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("callback-server", srv.Ready); err != nil {
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

	tencentClient, err := newTencentClient(o)
	if err != nil {
		return err
	}
	var rooms controllers.TencentRooms
	if tencentClient != nil {
		rooms = tencentClient
		if err := mgr.Add(&resync.Resyncer{
			Store:     store,
			Reader:    mgr.GetCache(),
			Tencent:   tencentClient,
			Namespace: o.roomNamespace,
			Interval:  o.resyncInterval,
			Metrics:   resync.NewMetrics(metrics.Registry),
			Log:       log.WithName("resync"),
		}); err != nil {
			return fmt.Errorf("adding the resync: %w", err)
		}
		setupLog.Info("Tencent REST API enabled: resync and declared rooms", "url", o.tencentAPIURL, "admin", o.tencentAdminUser, "resyncInterval", o.resyncInterval)
	} else {
		setupLog.Info("No Tencent secret key: running callback-only (no resync; declared rooms are not created in Tencent). Set --tencent-secret-key-file or LIVEROOM_TENCENT_SECRET_KEY to enable")
	}

	recorder := mgr.GetEventRecorder(controllers.FieldOwner)
	if err := (&controllers.LiveRoomReconciler{
		Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: recorder, EndedRoomTTL: o.endedRoomTTL, Tencent: rooms,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LiveRoom controller: %w", err)
	}
	if err := (&controllers.RecordingPolicyReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the RecordingPolicy controller: %w", err)
	}

	setupLog.Info("Starting manager", "sdkAppId", o.sdkAppID, "roomNamespace", o.roomNamespace, "leaderElection", o.leaderElect)
	return mgr.Start(ctx)
}

// callbackTokens loads the callback tokens: a configured source must hold one, and
// without any the manager only starts when unsigned callbacks are allowed explicitly.
func callbackTokens(o *options) (*webhookserver.Tokens, error) {
	tokens, err := webhookserver.NewTokens(o.callbackTokenFile, os.Getenv("LIVEROOM_CALLBACK_TOKENS"))
	if err != nil {
		return nil, err
	}
	if !tokens.Enabled() && !o.allowUnsigned {
		return nil, errors.New("no callback token configured: set --callback-token-file or LIVEROOM_CALLBACK_TOKENS to the token set in Tencent, or pass --callback-allow-unsigned to accept unsigned callbacks")
	}
	return tokens, nil
}

// secretKey returns where the Tencent secret key comes from: the file, read afresh each
// time so a rotated Secret needs no restart, else the environment; nil when neither.
func secretKey(file string) func() (string, error) {
	if file != "" {
		return func() (string, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("reading the Tencent secret key: %w", err)
			}
			key := strings.TrimSpace(string(b))
			if key == "" {
				return "", fmt.Errorf("the Tencent secret key file %s is empty", file)
			}
			return key, nil
		}
	}
	if key := strings.TrimSpace(os.Getenv("LIVEROOM_TENCENT_SECRET_KEY")); key != "" {
		return func() (string, error) { return key, nil }
	}
	return nil
}

// newTencentClient is the REST client, or nil without a secret key.
func newTencentClient(o *options) (*tencent.Client, error) {
	key := secretKey(o.tencentKeyFile)
	if key == nil {
		return nil, nil
	}
	if _, err := key(); err != nil {
		return nil, err
	}
	return tencent.NewClient(tencent.Config{BaseURL: o.tencentAPIURL, SDKAppID: o.sdkAppID, AdminUser: o.tencentAdminUser, SecretKey: key})
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
