package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/resync"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// Defaults of the LiveApp spec, for apps read without the API server's defaulting.
const (
	DefaultAPIHost        = "https://adminapisgp.im.qcloud.com"
	DefaultAdminUser      = "administrator"
	DefaultEndedRoomTTL   = 24 * time.Hour
	DefaultResyncInterval = 5 * time.Minute
	// DefaultSecretKeyTTL is how long a secret key read from its Secret is reused.
	DefaultSecretKeyTTL = 30 * time.Second
	// secretReadTimeout bounds one GET of a Secret.
	secretReadTimeout = 10 * time.Second
	// changesBuffer is how many app changes wait for the LiveRoom controller.
	changesBuffer = 1024
)

// Config is what the controller runs for one serving app.
type Config struct {
	// Key is the LiveApp; its namespace holds the app's rooms.
	Key      types.NamespacedName
	UID      types.UID
	SDKAppID int64
	// APIHost and AdminUser are how the REST API is called.
	APIHost, AdminUser string
	// SecretKeyRef is the app's secret key; nil: no REST API, no resync.
	SecretKeyRef   *livev1.SecretKeyRef
	EndedRoomTTL   time.Duration
	ResyncInterval time.Duration
}

// ConfigOf is the configuration a LiveApp asks for, with the spec's defaults filled in.
func ConfigOf(app *livev1.LiveApp) Config {
	c := Config{
		Key:            types.NamespacedName{Namespace: app.Namespace, Name: app.Name},
		UID:            app.UID,
		SDKAppID:       app.Spec.SDKAppID,
		APIHost:        app.Spec.API.Host,
		AdminUser:      app.Spec.API.AdminUser,
		EndedRoomTTL:   DefaultEndedRoomTTL,
		ResyncInterval: DefaultResyncInterval,
	}
	if ref := app.Spec.API.SecretKeyRef; ref != nil {
		c.SecretKeyRef = ref.DeepCopy()
	}
	if c.APIHost == "" {
		c.APIHost = DefaultAPIHost
	}
	if c.AdminUser == "" {
		c.AdminUser = DefaultAdminUser
	}
	if d := app.Spec.Rooms.EndedRoomTTL; d != nil {
		c.EndedRoomTTL = d.Duration
	}
	if d := app.Spec.Rooms.ResyncInterval; d != nil && d.Duration > 0 {
		c.ResyncInterval = d.Duration
	}
	return c
}

func (c Config) equal(o Config) bool {
	return c.sameClient(o) && c.Key == o.Key && c.UID == o.UID && c.EndedRoomTTL == o.EndedRoomTTL && c.ResyncInterval == o.ResyncInterval
}

// sameClient reports whether two configurations call the REST API the same way.
func (c Config) sameClient(o Config) bool {
	return c.SDKAppID == o.SDKAppID && c.APIHost == o.APIHost && c.AdminUser == o.AdminUser &&
		(c.SecretKeyRef == nil) == (o.SecretKeyRef == nil) && (c.SecretKeyRef == nil || *c.SecretKeyRef == *o.SecretKeyRef)
}

// App is what the LiveRoom reconciler needs of the app serving a namespace.
type App struct {
	Key      types.NamespacedName
	UID      types.UID
	SDKAppID int64
	// EndedRoomTTL is how long an ended, discovered room is kept; 0 keeps it.
	EndedRoomTTL time.Duration
	// Tencent calls the app's REST API; nil when the app has no usable secret key.
	Tencent *tencent.Client
}

// Registry holds the serving apps for the controller: the LiveApp reconciler sets and
// removes them, the LiveRoom reconciler looks a room's app up by namespace, and each
// app with a secret key has its REST client and its resync loop. It is a manager
// runnable of the leader: the loops run while it does.
type Registry struct {
	// NewStore builds the room store of an app (its namespace and SDKAppID), as the
	// callback server's: the same field owner, so the resync and callbacks share fields.
	NewStore func(namespace string, sdkAppID int64) *roomstore.Store
	// Reader lists LiveRooms for the resync: the manager's cache, with the
	// roomstore.IndexRoomID index.
	Reader client.Reader
	// SecretReader reads Secrets from the API server (the manager's APIReader): the
	// controller neither lists nor watches Secrets.
	SecretReader client.Reader
	// NewClient builds REST clients; default tencent.NewClient.
	NewClient func(tencent.Config) (*tencent.Client, error)
	// ResyncMetrics are shared by every app's resync; nil collects them unregistered.
	ResyncMetrics     *resync.Metrics
	resyncMetricsOnce sync.Once
	Log               logr.Logger
	// SecretKeyTTL is how long a secret key read is reused; default DefaultSecretKeyTTL.
	SecretKeyTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu      sync.Mutex
	ctx     context.Context // the runnable's, once started
	apps    map[types.NamespacedName]*entry
	changes chan event.GenericEvent
}

type entry struct {
	cfg    Config
	client *tencent.Client
	loop   *loop
}

// loop is one app's running resync.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *loop) stop() {
	if l != nil {
		l.cancel()
		<-l.done
	}
}

// NeedLeaderElection is true: the resync loops run in the leader only.
func (r *Registry) NeedLeaderElection() bool { return true }

// Start runs the resync loops of the registered apps until ctx ends, then stops them.
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	for _, e := range r.apps {
		if e.client != nil && e.loop == nil {
			e.loop = r.startLoop(e)
		}
	}
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	loops := make([]*loop, 0, len(r.apps))
	for _, e := range r.apps {
		loops = append(loops, e.loop)
		e.loop = nil
	}
	r.ctx = nil
	r.mu.Unlock()
	for _, l := range loops {
		l.stop()
	}
	return nil
}

// Changes sends an event with the LiveApp (namespace and name) each time what its rooms
// depend on changes: the app appears or goes, its TTL or its REST client changes.
func (r *Registry) Changes() <-chan event.GenericEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changes == nil {
		r.changes = make(chan event.GenericEvent, changesBuffer)
	}
	return r.changes
}

// Set registers a serving app or brings it to cfg: a new REST client when the way the
// API is called changed, the resync restarted when the client or its interval did.
func (r *Registry) Set(cfg Config) error {
	r.mu.Lock()
	if r.apps == nil {
		r.apps = map[types.NamespacedName]*entry{}
	}
	old := r.apps[cfg.Key]
	if old != nil && old.cfg.equal(cfg) {
		r.mu.Unlock()
		return nil
	}
	e := &entry{cfg: cfg}
	var stale *loop
	switch {
	case old != nil && old.cfg.sameClient(cfg):
		e.client = old.client
		if old.cfg.ResyncInterval == cfg.ResyncInterval {
			e.loop = old.loop
		} else {
			stale = old.loop
		}
	default:
		if old != nil {
			stale = old.loop
		}
		if cfg.SecretKeyRef != nil {
			c, err := r.ClientFor(cfg)
			if err != nil {
				r.mu.Unlock()
				return err
			}
			e.client = c
		}
	}
	if e.client != nil && e.loop == nil && r.ctx != nil {
		e.loop = r.startLoop(e)
	}
	r.apps[cfg.Key] = e
	notify := old == nil || old.cfg.EndedRoomTTL != cfg.EndedRoomTTL || old.client != e.client || old.cfg.SDKAppID != cfg.SDKAppID
	r.mu.Unlock()
	stale.stop()
	if notify {
		r.notify(cfg.Key)
	}
	return nil
}

// Remove forgets an app and stops its resync.
func (r *Registry) Remove(key types.NamespacedName) {
	r.mu.Lock()
	e, ok := r.apps[key]
	delete(r.apps, key)
	r.mu.Unlock()
	if !ok {
		return
	}
	e.loop.stop()
	r.resyncMetrics().Forget(key.String())
	r.notify(key)
}

// resyncMetrics are the apps' resync metrics, unregistered when none were given.
func (r *Registry) resyncMetrics() *resync.Metrics {
	r.resyncMetricsOnce.Do(func() {
		if r.ResyncMetrics == nil {
			r.ResyncMetrics = resync.NewMetrics(nil)
		}
	})
	return r.ResyncMetrics
}

// AppFor returns the app serving namespace.
func (r *Registry) AppFor(namespace string) (App, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, e := range r.apps {
		if key.Namespace == namespace {
			return App{Key: key, UID: e.cfg.UID, SDKAppID: e.cfg.SDKAppID, EndedRoomTTL: e.cfg.EndedRoomTTL, Tencent: e.client}, true
		}
	}
	return App{}, false
}

// Client returns the REST client of a registered app, nil without one.
func (r *Registry) Client(key types.NamespacedName) *tencent.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.apps[key]; ok {
		return e.client
	}
	return nil
}

// Running reports whether the app's resync runs.
func (r *Registry) Running(key types.NamespacedName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.apps[key]
	return ok && e.loop != nil
}

// ClientFor builds a REST client for cfg, which must have a SecretKeyRef. The key is
// read from its Secret when a UserSig is signed, reused for SecretKeyTTL.
func (r *Registry) ClientFor(cfg Config) (*tencent.Client, error) {
	if cfg.SecretKeyRef == nil {
		return nil, errors.New("the app has no secret key")
	}
	newClient := r.NewClient
	if newClient == nil {
		newClient = tencent.NewClient
	}
	return newClient(tencent.Config{
		BaseURL: cfg.APIHost, SDKAppID: cfg.SDKAppID, AdminUser: cfg.AdminUser,
		SecretKey: r.secretKey(cfg.Key.Namespace, *cfg.SecretKeyRef),
	})
}

// startLoop starts e's resync; r.mu is held and r.ctx set.
func (r *Registry) startLoop(e *entry) *loop {
	ctx, cancel := context.WithCancel(r.ctx)
	l := &loop{cancel: cancel, done: make(chan struct{})}
	ns := e.cfg.Key.Namespace
	rs := &resync.Resyncer{
		Store:     r.NewStore(ns, e.cfg.SDKAppID),
		Reader:    r.Reader,
		Tencent:   e.client,
		Namespace: ns,
		Interval:  e.cfg.ResyncInterval,
		Metrics:   r.resyncMetrics().For(e.cfg.Key.String()),
		Log:       r.Log.WithValues("liveApp", e.cfg.Key.String(), "sdkAppId", e.cfg.SDKAppID),
	}
	go func() {
		defer close(l.done)
		_ = rs.Start(ctx)
	}()
	return l
}

func (r *Registry) notify(key types.NamespacedName) {
	r.mu.Lock()
	ch := r.changes
	r.mu.Unlock()
	if ch == nil {
		return
	}
	app := &livev1.LiveApp{}
	app.Namespace, app.Name = key.Namespace, key.Name
	select {
	case ch <- event.GenericEvent{Object: app}:
	default:
		r.Log.Info("Dropped an app change: the LiveRoom controller is not keeping up", "liveApp", key.String())
	}
}

// secretKey reads the key from its Secret, reusing a read for SecretKeyTTL; failures are
// not reused, so a Secret created late is found at the next call.
func (r *Registry) secretKey(namespace string, ref livev1.SecretKeyRef) func() (string, error) {
	var mu sync.Mutex
	var key string
	var readAt time.Time
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		now := r.now()
		if key != "" && now.Sub(readAt) < r.secretKeyTTL() {
			return key, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), secretReadTimeout)
		defer cancel()
		v, err := SecretValue(ctx, r.SecretReader, namespace, ref)
		if err != nil {
			return "", err
		}
		key, readAt = strings.TrimSpace(v), now
		return key, nil
	}
}

func (r *Registry) secretKeyTTL() time.Duration {
	if r.SecretKeyTTL > 0 {
		return r.SecretKeyTTL
	}
	return DefaultSecretKeyTTL
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// MissingSecretError says a referenced Secret, or its key, is absent or empty. Its text
// names the Secret and the key, never a value.
type MissingSecretError struct {
	Namespace, Name, Key string
	// NoSecret is true when the Secret itself does not exist.
	NoSecret bool
}

func (e *MissingSecretError) Error() string {
	if e.NoSecret {
		return fmt.Sprintf("Secret %s/%s not found", e.Namespace, e.Name)
	}
	return fmt.Sprintf("Secret %s/%s has no key %q, or it is empty", e.Namespace, e.Name, e.Key)
}

// SecretValue reads one key of a Secret with a GET (reader is an API reader, not a cache).
// An absent Secret or key is a *MissingSecretError.
func SecretValue(ctx context.Context, reader client.Reader, namespace string, ref livev1.SecretKeyRef) (string, error) {
	var s corev1.Secret
	if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &MissingSecretError{Namespace: namespace, Name: ref.Name, Key: ref.Key, NoSecret: true}
		}
		return "", fmt.Errorf("reading Secret %s/%s: %w", namespace, ref.Name, err)
	}
	v := s.Data[ref.Key]
	if len(strings.TrimSpace(string(v))) == 0 {
		return "", &MissingSecretError{Namespace: namespace, Name: ref.Name, Key: ref.Key}
	}
	return string(v), nil
}

// shortHash is 10 hex characters of sha256(s).
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}

// TokenSecretName is the name of the Secret, in the app's namespace, where the operator
// keeps a managed app's callback token.
func TokenSecretName(appName string) string {
	const suffix = "-callback-token"
	if len(appName)+len(suffix) <= 253 {
		return appName + suffix
	}
	return appName[:253-len(suffix)-11] + "-" + shortHash(appName) + suffix
}
