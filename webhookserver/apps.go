package webhookserver

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/forward"
)

// DefaultMaxSkew is the accepted distance between RequestTime and now of an app whose
// spec.callback.maxSkew is not set.
const DefaultMaxSkew = time.Minute

// servedApp is a LiveApp that serves its SDKAppID, as the handler uses it. It is never
// changed once published: the table publishes a new one.
type servedApp struct {
	key      types.NamespacedName
	sdkAppID int64
	// label is the app's metrics label: namespace/name.
	label string
	// obj is the LiveApp as the cache last had it, for its Events and status.roomQuota.
	obj           *livev1.LiveApp
	tokens        *Tokens
	allowUnsigned bool
	maxSkew       time.Duration
	// forwarder delivers the app's callbacks to its backend; nil without spec.forward.
	forwarder Forwarder
	// store writes the app's rooms, in its namespace, through the lifecycle lane.
	store roomWriter
}

// runningForwarder is a Forwarder the table runs; *forward.Forwarder is the real one.
type runningForwarder interface {
	Forwarder
	Start(ctx context.Context) error
}

// forwardSettings are what a LiveApp configures of its fan-out.
type forwardSettings struct {
	url, failPolicy, authorization string
	timeout                        time.Duration
}

// appState is what the table keeps of a serving app across updates: its tokens and its
// fan-out outlive the LiveApp objects the cache hands out.
type appState struct {
	label  string
	tokens *Tokens
	store  roomWriter
	// projection is the tokens data last read from the app's projection Secret, and
	// projected whether one was read at all: a projection is looked at when it changes.
	projection string
	projected  bool
	// forwardAuth is the Authorization value the projection last held.
	forwardAuth string
	// forwarding is the fan-out configured last, running or (when forwarder is nil and
	// the settings are set) refused; forwarder is the one running.
	forwarding forwardSettings
	forwarder  *appForwarder
	// skewReported is the generation whose maxSkew was reported as out of bounds.
	skewReported int64
}

// appForwarder is one running fan-out of an app.
type appForwarder struct {
	f    runningForwarder
	reg  prometheus.Registerer // where its metrics are, labelled with the app
	stop context.CancelFunc
}

// appTable holds the apps the server serves, by SDKAppID: the LiveApps that serve their
// SDKAppID (apps.Serving, the rule the controller applies), each with the tokens of its
// projection Secret, its fan-out and its room store. Requests read a published snapshot;
// update, from the cache's events, publishes the next one.
type appTable struct {
	log     logr.Logger
	metrics *Metrics
	// storeFor builds an app's room store.
	storeFor func(namespace string, sdkAppID int64) roomWriter
	// newForwarder builds an app's fan-out; forward.New unless a test says otherwise.
	newForwarder func(forward.Config) (runningForwarder, error)
	// forwardTuning is the part of every fan-out's configuration that is not the app's.
	forwardTuning forward.Config
	// loadedChanged is called when the loaded token sets change (the replica's Lease).
	loadedChanged func()

	current atomic.Pointer[map[int64]*servedApp]

	mu     sync.Mutex // serialises update
	states map[types.UID]*appState
	loaded map[string]string
	// running counts the fan-outs started and not yet drained.
	running sync.WaitGroup
}

func newAppTable(log logr.Logger, metrics *Metrics, storeFor func(string, int64) roomWriter, forwardTuning forward.Config) *appTable {
	t := &appTable{
		log: log, metrics: metrics, storeFor: storeFor, forwardTuning: forwardTuning,
		newForwarder: func(cfg forward.Config) (runningForwarder, error) { return forward.New(cfg) },
		states:       map[types.UID]*appState{},
		loaded:       map[string]string{},
	}
	t.current.Store(&map[int64]*servedApp{})
	return t
}

// lookup returns the app serving the SdkAppid of a query, nil when none does. Only the
// plain decimal spelling Tencent sends is an SDKAppID.
func (t *appTable) lookup(sdkAppID string) *servedApp {
	id, err := strconv.ParseInt(sdkAppID, 10, 64)
	if err != nil || strconv.FormatInt(id, 10) != sdkAppID {
		return nil
	}
	return (*t.current.Load())[id]
}

// size is the number of apps served.
func (t *appTable) size() int { return len(*t.current.Load()) }

// loadedTokens is what the replica's Lease reports: LiveApp UID -> TokensHash of the
// tokens it accepts, for each served app that has some.
func (t *appTable) loadedTokens() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.loaded)
}

// update serves the LiveApps of list that serve their SDKAppID, with the tokens of their
// projection Secrets (projection returns an app's, nil when there is none yet); fan-outs
// it starts run until ctx ends. Apps no longer served are dropped and their fan-outs
// drained.
func (t *appTable) update(ctx context.Context, list []livev1.LiveApp, projection func(types.UID) *corev1.Secret) {
	t.mu.Lock()
	defer t.mu.Unlock()
	serving, _ := apps.Serving(list)
	served := make(map[types.UID]bool, len(serving))
	for _, app := range serving {
		served[app.UID] = true
	}
	// Apps that went are dropped first: a LiveApp made again under the same name (a new
	// UID) reuses their metrics label.
	for uid, st := range t.states {
		if served[uid] {
			continue
		}
		t.stopForwarder(st)
		t.metrics.forget(st.label)
		delete(t.states, uid)
		t.log.Info("Stopped serving an app", "liveApp", st.label)
	}
	next := make(map[int64]*servedApp, len(serving))
	for key, app := range serving {
		st := t.states[app.UID]
		if st == nil {
			st = &appState{label: key.String(), tokens: &Tokens{}, store: t.storeFor(app.Namespace, app.Spec.SDKAppID)}
			t.states[app.UID] = st
		}
		t.loadProjection(st, projection(app.UID))
		t.metrics.Tokens.WithLabelValues(st.label).Set(float64(st.tokens.Count()))
		a := &servedApp{
			key: key, sdkAppID: app.Spec.SDKAppID, label: st.label, obj: app,
			tokens: st.tokens, allowUnsigned: app.Spec.Callback.AllowUnsigned,
			maxSkew: t.maxSkew(st, app), store: st.store,
		}
		if fwd := t.configureForwarding(ctx, st, app); fwd != nil {
			a.forwarder = fwd.f
		}
		next[app.Spec.SDKAppID] = a
	}
	t.publish(next)
}

// publish makes next the served apps and reports a change of the loaded token sets.
func (t *appTable) publish(next map[int64]*servedApp) {
	before := *t.current.Load()
	t.current.Store(&next)
	for id, app := range next {
		if old, ok := before[id]; !ok || old.key != app.key {
			t.log.Info("Serving an app", "liveApp", app.label, "sdkAppId", id, "signed", app.tokens.Enabled(),
				"allowUnsigned", app.allowUnsigned, "forward", app.forwarder != nil)
		}
	}
	loaded := map[string]string{}
	for _, app := range next {
		if h := app.tokens.Hash(); h != "" {
			loaded[string(app.obj.UID)] = h
		}
	}
	if maps.Equal(loaded, t.loaded) {
		return
	}
	t.loaded = loaded
	if t.loadedChanged != nil {
		t.loadedChanged()
	}
}

// loadProjection reads the app's tokens and fan-out Authorization from its projection
// Secret when they changed. A projection without a usable token is refused: the app keeps
// the tokens it had, and the refusal is counted and logged.
func (t *appTable) loadProjection(st *appState, proj *corev1.Secret) {
	if proj == nil {
		return // not written yet, or on its way out with its app: nothing changes
	}
	st.forwardAuth = string(proj.Data[apps.ForwardAuthorizationKey])
	raw := string(proj.Data[apps.TokensKey])
	if st.projected && raw == st.projection {
		return
	}
	st.projected, st.projection = true, raw
	changed, err := st.tokens.Set(apps.ParseTokens(raw))
	if err != nil {
		t.metrics.TokenReloadErrors.WithLabelValues(st.label).Inc()
		t.log.Error(err, "Kept the previous callback tokens", "liveApp", st.label, "count", st.tokens.Count(), "projection", proj.Name)
		return
	}
	if changed {
		t.log.Info("Loaded callback tokens", "liveApp", st.label, "count", st.tokens.Count(), "tokensHash", st.tokens.Hash())
	}
}

// maxSkew is the app's accepted RequestTime distance: spec.callback.maxSkew, at most
// MaxSkewLimit (a longer one is cut to it and reported once per generation).
func (t *appTable) maxSkew(st *appState, app *livev1.LiveApp) time.Duration {
	d := app.Spec.Callback.MaxSkew
	switch {
	case d == nil || d.Duration <= 0:
		return DefaultMaxSkew
	case d.Duration > MaxSkewLimit:
		if st.skewReported != app.Generation {
			st.skewReported = app.Generation
			t.log.Error(fmt.Errorf("spec.callback.maxSkew %s is more than %s", d.Duration, MaxSkewLimit),
				"Accepting callbacks within the limit instead", "liveApp", st.label, "maxSkew", MaxSkewLimit.String())
		}
		return MaxSkewLimit
	}
	return d.Duration
}

// configureForwarding brings the app's fan-out to what its spec and projection say:
// started, replaced (the old one drains) or stopped. It returns the one running.
func (t *appTable) configureForwarding(ctx context.Context, st *appState, app *livev1.LiveApp) *appForwarder {
	want := forwardSettingsOf(app, st.forwardAuth)
	if want == st.forwarding {
		return st.forwarder
	}
	t.stopForwarder(st)
	st.forwarding = want
	if want.url == "" || ctx.Err() != nil {
		return nil
	}
	cfg := t.forwardTuning
	cfg.URL, cfg.Timeout, cfg.FailPolicy, cfg.Authorization = want.url, want.timeout, want.failPolicy, want.authorization
	cfg.Log = t.log.WithName("forward").WithValues("liveApp", st.label)
	var reg prometheus.Registerer
	if t.metrics.reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"app": st.label}, t.metrics.reg)
		cfg.Registerer = reg
	}
	f, err := t.newForwarder(cfg)
	if err != nil {
		// The spec is checked by the CRD; what still fails is logged once per change.
		t.log.Error(err, "Not forwarding the app's callbacks", "liveApp", st.label)
		return nil
	}
	fctx, stop := context.WithCancel(ctx)
	t.running.Add(1)
	go func() {
		defer t.running.Done()
		if err := f.Start(fctx); err != nil {
			t.log.Error(err, "Forwarding stopped", "liveApp", st.label)
		}
	}()
	st.forwarder = &appForwarder{f: f, reg: reg, stop: stop}
	return st.forwarder
}

// stopForwarder stops the app's fan-out, which drains in the background. Its metrics go
// at once: a replacement registers the same series.
func (t *appTable) stopForwarder(st *appState) {
	fwd := st.forwarder
	st.forwarder, st.forwarding = nil, forwardSettings{}
	if fwd == nil {
		return
	}
	fwd.stop()
	if m, ok := fwd.f.(interface{ Metrics() *forward.Metrics }); ok && fwd.reg != nil {
		fm := m.Metrics()
		for _, c := range []prometheus.Collector{fm.Requests, fm.Duration, fm.QueueDepth, fm.QueueBytes, fm.Dropped} {
			fwd.reg.Unregister(c)
		}
	}
}

// stopAll stops every fan-out and waits until they have drained.
func (t *appTable) stopAll() {
	t.mu.Lock()
	for _, st := range t.states {
		t.stopForwarder(st)
	}
	t.mu.Unlock()
	t.running.Wait()
}

// forwardSettingsOf is the fan-out an app asks for; its url is empty without one.
func forwardSettingsOf(app *livev1.LiveApp, authorization string) forwardSettings {
	spec := app.Spec.Forward
	if spec == nil {
		return forwardSettings{}
	}
	s := forwardSettings{url: spec.URL, failPolicy: string(spec.FailPolicy), authorization: authorization}
	if spec.Timeout != nil {
		s.timeout = spec.Timeout.Duration
	}
	return s
}
