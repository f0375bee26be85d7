package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	liveac "github.com/liveroom-io/liveroom-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/conditions"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// Defaults of LiveAppReconciler's timings and of the LiveApp spec.
const (
	// DefaultCallbackCheckInterval is how often Tencent's callback configuration is read
	// back to correct drift.
	DefaultCallbackCheckInterval = 10 * time.Minute
	// DefaultSecretPoll is how often referenced Secrets are read again: the controller
	// does not watch Secrets.
	DefaultSecretPoll = time.Minute
	// DefaultReplicaPoll is how often the replicas' Leases are looked at again while a
	// token switch waits for them (their changes also trigger a reconcile).
	DefaultReplicaPoll = 5 * time.Second
	// DefaultTokenGrace is added to the app's maxSkew before a replaced token is dropped:
	// callbacks Tencent signed just before the switch may still be on their way.
	DefaultTokenGrace = 10 * time.Second
	// DefaultQuotaWarning is how long Tencent's room quota warning keeps QuotaNearLimit.
	DefaultQuotaWarning = time.Hour

	defaultRotationPeriod = 720 * time.Hour
	defaultMaxSkew        = time.Minute
)

// LiveAppReconciler serves the LiveApps: it decides which app serves each SDKAppID and
// namespace, keeps the app registry (REST client, TTL, resync) the LiveRoom reconciler
// and the resync use, hands each app's callback tokens to the callback server through a
// projection Secret in the operator's namespace, and, for managed apps, configures
// Tencent's callbacks and rotates the callback token without losing a callback.
type LiveAppReconciler struct {
	client.Client
	// APIReader reads Secrets from the API server: the controller never lists or
	// watches Secrets, it GETs the ones LiveApps name and those it made.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Namespace is the operator's: the projection Secrets and the callback-server
	// replicas' Leases are there.
	Namespace string
	Registry  *apps.Registry

	// CheckInterval is how often Tencent's callback configuration is re-checked;
	// default DefaultCallbackCheckInterval.
	CheckInterval time.Duration
	// SecretPoll is how often referenced Secrets are read again; default DefaultSecretPoll.
	SecretPoll time.Duration
	// ReplicaPoll is how often a waiting token switch looks at the replicas again;
	// default DefaultReplicaPoll.
	ReplicaPoll time.Duration
	// TokenGrace is how much longer than maxSkew a replaced token stays accepted;
	// default DefaultTokenGrace.
	TokenGrace time.Duration
	// QuotaWarning is how long a room quota warning keeps QuotaNearLimit true; default
	// DefaultQuotaWarning.
	QuotaWarning time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	checks map[types.UID]callbackCheck
}

// +kubebuilder:rbac:groups=live.liveroom.io,resources=liveapps,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liveapps/status,verbs=get;patch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liveapps/finalizers,verbs=update
// Secrets are read by name (the secret keys, tokens and Authorization values LiveApps
// name, in their namespaces) and written where the operator keeps an app's token: never
// listed or watched.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update
// Projection Secrets, in the operator's namespace, are deleted with their LiveApp; the
// callback-server replicas' Leases are there too.
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=delete
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile serves one LiveApp, or refuses it, or lets it go.
func (r *LiveAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var app livev1.LiveApp
	if err := r.Get(ctx, req.NamespacedName, &app); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.Registry.Remove(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var all livev1.LiveAppList
	if err := r.List(ctx, &all); err != nil {
		return ctrl.Result{}, err
	}
	serving, refused := apps.Serving(all.Items)
	_, isServing := serving[req.NamespacedName]
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, &app, isServing)
	}
	if !controllerutil.ContainsFinalizer(&app, livev1.AppFinalizer) {
		patch := client.MergeFrom(app.DeepCopy())
		controllerutil.AddFinalizer(&app, livev1.AppFinalizer)
		if err := r.Patch(ctx, &app, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	if refusal, ok := refused[req.NamespacedName]; ok {
		return ctrl.Result{}, r.refuse(ctx, &app, refusal)
	}
	return r.serve(ctx, &app)
}

// appReport collects what one reconcile of an app found.
type appReport struct {
	stalled *observation // the first reason no progress is possible
	waiting *observation // the first thing being waited for
	errs    []error
	requeue time.Duration
}

func (rep *appReport) stall(reason, message string) {
	if rep.stalled == nil {
		rep.stalled = &observation{false, reason, message}
	}
}

func (rep *appReport) wait(reason, message string) {
	if rep.waiting == nil {
		rep.waiting = &observation{false, reason, message}
	}
}

func (rep *appReport) fail(err error) { rep.errs = append(rep.errs, err) }

// after asks for a reconcile within d.
func (rep *appReport) after(d time.Duration) {
	d = max(d, time.Second)
	if rep.requeue == 0 || d < rep.requeue {
		rep.requeue = d
	}
}

// serve reconciles a serving app.
func (r *LiveAppReconciler) serve(ctx context.Context, app *livev1.LiveApp) (ctrl.Result, error) {
	now := r.now()
	rep := &appReport{}
	st := app.Status.DeepCopy()
	st.ObservedGeneration = app.Generation

	r.register(ctx, app, rep)

	accepted, ts, tokens := r.callbackTokens(ctx, app, rep, now)
	projected := false
	switch tokens {
	case tokensNone:
		// Nothing authenticates the app's callbacks: the callback server gets nothing to
		// accept them with.
		if err := r.deleteProjection(ctx, app.UID); err != nil {
			rep.fail(err)
		}
	case tokensKnown:
		if auth, ok := r.forwardAuthorization(ctx, app, rep); ok {
			if err := r.writeProjection(ctx, app, accepted, auth); err != nil {
				rep.fail(err)
			} else {
				projected = true
			}
		}
	}
	switch {
	case !app.Spec.Callback.Manage:
		st.TokenSecretName = ""
	case ts != nil:
		// The token Secret, read from the API server, is the truth; the cached LiveApp
		// may not show the last status written yet.
		st.TokenSecretName = ts.obj.Name
		if at := ts.state.switchedAt; at != nil {
			st.TokenRotatedAt = &metav1.Time{Time: *at}
		}
	}

	if app.Spec.Callback.Manage {
		var tc TencentCallbacks
		if c := r.Registry.Client(client.ObjectKeyFromObject(app)); c != nil {
			tc = c
		}
		r.manageCallback(ctx, appRound{app: app, st: st, rep: rep, now: now}, tc, callbackTokens{secret: ts, accepted: accepted, projected: projected})
	} else {
		st.Callback = nil
		conditions.For(&st.Conditions, app.Generation).MarkUnknown(livev1.ConditionCallbackConfigured, reasonNotManaged,
			"callback.manage is off: Tencent's callback URL, commands and token are configured outside the operator")
	}
	r.markQuota(app, st, rep, now)
	r.summarize(app, st, rep)
	if err := r.applyStatus(ctx, app, st); err != nil {
		return ctrl.Result{}, err
	}
	if len(rep.errs) > 0 {
		return ctrl.Result{}, errors.Join(rep.errs...)
	}
	if app.Spec.Callback.Manage || app.Spec.API.SecretKeyRef != nil || app.Spec.Callback.TokensSecretRef != nil || app.Spec.Forward != nil {
		rep.after(r.secretPoll()) // the Secrets it names may change
	}
	return ctrl.Result{RequeueAfter: rep.requeue}, nil
}

// register puts the app in the registry, with its REST client when its secret key can
// be read. A key that is not there yet or any more leaves the app without the API; an
// error reading it leaves the registry as it was.
func (r *LiveAppReconciler) register(ctx context.Context, app *livev1.LiveApp, rep *appReport) {
	cfg := apps.ConfigOf(app)
	if ref := app.Spec.API.SecretKeyRef; ref != nil {
		if _, err := apps.SecretValue(ctx, r.APIReader, app.Namespace, *ref); err != nil {
			r.secretProblem(rep, "api.secretKeyRef", "SecretKeyNotFound", "SecretKeyMissing", err)
			var missing *apps.MissingSecretError
			if !errors.As(err, &missing) {
				return
			}
			cfg.SecretKeyRef = nil
		}
	}
	if err := r.Registry.Set(cfg); err != nil {
		rep.stall("InvalidAPI", fmt.Sprintf("The REST API cannot be called as configured: %v", err))
	}
}

// tokensOutcome says what is known of the tokens an app's callbacks may be signed with.
type tokensOutcome int

const (
	// tokensKnown: the tokens (none with allowUnsigned) go to the projection.
	tokensKnown tokensOutcome = iota
	// tokensUnknown: they cannot be read now; the projection is left as it is.
	tokensUnknown
	// tokensNone: the spec gives no way to authenticate callbacks; no projection.
	tokensNone
)

// callbackTokens are the tokens the app's callbacks may be signed with and, for managed
// apps, the token Secret.
func (r *LiveAppReconciler) callbackTokens(ctx context.Context, app *livev1.LiveApp, rep *appReport, now time.Time) ([]string, *tokenSecret, tokensOutcome) {
	cb := app.Spec.Callback
	switch {
	case cb.Manage:
		ts := r.managedTokens(ctx, app, rep, now)
		if ts == nil {
			return nil, nil, tokensUnknown
		}
		return ts.state.accepted(now), ts, tokensKnown
	case cb.TokensSecretRef != nil:
		if tokens := r.unmanagedTokens(ctx, app, rep); tokens != nil {
			return tokens, nil, tokensKnown
		}
		return nil, nil, tokensUnknown
	case cb.AllowUnsigned:
		return nil, nil, tokensKnown
	}
	rep.stall("NoCallbackAuthentication", "Callbacks need a way to be authenticated: set callback.manage (with api.secretKeyRef) for a token the operator generates, sets in Tencent and rotates, or callback.tokensSecretRef for tokens you set in Tencent yourself, or callback.allowUnsigned to accept unsigned callbacks (trials only)")
	return nil, nil, tokensNone
}

// forwardAuthorization is the Authorization value of deliveries to the app's backend ("" for
// none), and whether it is known.
func (r *LiveAppReconciler) forwardAuthorization(ctx context.Context, app *livev1.LiveApp, rep *appReport) (string, bool) {
	if app.Spec.Forward == nil || app.Spec.Forward.AuthorizationSecretRef == nil {
		return "", true
	}
	v, err := apps.SecretValue(ctx, r.APIReader, app.Namespace, *app.Spec.Forward.AuthorizationSecretRef)
	if err != nil {
		r.secretProblem(rep, "forward.authorizationSecretRef", "ForwardAuthorizationNotFound", "ForwardAuthorizationMissing", err)
		return "", false
	}
	return strings.TrimSpace(v), true
}

// markQuota sets QuotaNearLimit from Tencent's last room quota warning, which the
// callback server writes to status.roomQuota: true while it is recent.
func (r *LiveAppReconciler) markQuota(app *livev1.LiveApp, st *livev1.LiveAppStatus, rep *appReport, now time.Time) {
	c := conditions.For(&st.Conditions, app.Generation)
	q := app.Status.RoomQuota
	if q == nil {
		c.Mark(livev1.ConditionQuotaNearLimit, false, "NoWarning", "Tencent has not warned that the app nears its room quota")
		return
	}
	until := q.ReportedAt.Add(r.quotaWarning())
	if now.Before(until) {
		c.Mark(livev1.ConditionQuotaNearLimit, true, "TencentWarned",
			fmt.Sprintf("Tencent reported %d rooms of a quota of %d at %s", q.Rooms, q.MaxRooms, q.ReportedAt.UTC().Format(time.RFC3339)))
		rep.after(until.Sub(now))
		return
	}
	c.Mark(livev1.ConditionQuotaNearLimit, false, "WarningExpired",
		fmt.Sprintf("Tencent's last warning (%d rooms of %d, at %s) is older than %s", q.Rooms, q.MaxRooms, q.ReportedAt.UTC().Format(time.RFC3339), r.quotaWarning()))
}

// summarize sets Ready, Reconciling and Stalled.
func (r *LiveAppReconciler) summarize(app *livev1.LiveApp, st *livev1.LiveAppStatus, rep *appReport) {
	c := conditions.For(&st.Conditions, app.Generation)
	switch {
	case rep.stalled != nil:
		c.MarkStalled(rep.stalled.reason, rep.stalled.message)
	case len(rep.errs) > 0:
		c.MarkReconciling("ReconcileError", capitalize(joinErrors(rep.errs)))
	case rep.waiting != nil:
		c.MarkReconciling(rep.waiting.reason, rep.waiting.message)
	default:
		c.MarkReady("Serving", fmt.Sprintf("Serving SDKAppID %d; its rooms are in namespace %s", app.Spec.SDKAppID, app.Namespace))
	}
}

// refuse marks an app that does not serve its SDKAppID or namespace.
func (r *LiveAppReconciler) refuse(ctx context.Context, app *livev1.LiveApp, refusal apps.Refusal) error {
	r.Registry.Remove(client.ObjectKeyFromObject(app))
	if err := r.deleteProjection(ctx, app.UID); err != nil {
		return err
	}
	st := app.Status.DeepCopy()
	st.ObservedGeneration = app.Generation
	c := conditions.For(&st.Conditions, app.Generation)
	c.Mark(livev1.ConditionCallbackConfigured, false, refusal.Reason, "The app is not served: "+refusal.Message)
	c.MarkStalled(refusal.Reason, refusal.Message)
	if !conditions.IsStalled(app.Status.Conditions, app.Generation) {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, refusal.Reason, "Serve", "%s", refusal.Message)
	}
	return r.applyStatus(ctx, app, st)
}

// finalize undoes what the operator made for a deleted app: Tencent's callback
// configuration when the app managed it and its deletionPolicy is Remove (only the
// serving app's: a refused one for the same SDKAppID never touches it), the projection,
// the registry entry and its resync; then it lets the LiveApp go.
func (r *LiveAppReconciler) finalize(ctx context.Context, app *livev1.LiveApp, serving bool) error {
	key := client.ObjectKeyFromObject(app)
	if !controllerutil.ContainsFinalizer(app, livev1.AppFinalizer) {
		r.Registry.Remove(key)
		return nil
	}
	if serving && app.Spec.Callback.Manage && app.Spec.Callback.DeletionPolicy == livev1.CallbackDeletionRemove {
		if err := r.removeCallback(ctx, app); err != nil {
			return err
		}
	}
	if err := r.deleteProjection(ctx, app.UID); err != nil {
		return err
	}
	r.Registry.Remove(key)
	r.forgetCheck(app.UID)
	patch := client.MergeFrom(app.DeepCopy())
	controllerutil.RemoveFinalizer(app, livev1.AppFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, app, patch))
}

// removeCallback deletes Tencent's callback configuration. Without the secret key (its
// Secret is often deleted with the namespace) it cannot, says so and lets the app go.
func (r *LiveAppReconciler) removeCallback(ctx context.Context, app *livev1.LiveApp) error {
	cfg := apps.ConfigOf(app)
	var missing *apps.MissingSecretError
	if _, err := apps.SecretValue(ctx, r.APIReader, app.Namespace, *cfg.SecretKeyRef); errors.As(err, &missing) {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "CallbackNotRemoved", "Delete",
			"Tencent's callback configuration was left as it is: %v, so the operator cannot call Tencent", err)
		return nil
	} else if err != nil {
		return err
	}
	tc := r.Registry.Client(client.ObjectKeyFromObject(app))
	if tc == nil {
		c, err := r.Registry.ClientFor(cfg)
		if err != nil {
			return err
		}
		tc = c
	}
	if err := tc.DeleteCallback(ctx); err != nil && !tencent.IsCode(err, tencent.CodeCallbackConfigAbsent) {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "TencentFailed", "Delete", "Removing Tencent's callback configuration: %v", err)
		return err
	}
	r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "CallbackRemoved", "Delete", "Removed Tencent's callback configuration (deletionPolicy Remove): Tencent stops calling")
	return nil
}

// applyStatus writes the controller's part of the app's status when it changed;
// status.roomQuota is the callback server's and is never written here.
func (r *LiveAppReconciler) applyStatus(ctx context.Context, app *livev1.LiveApp, st *livev1.LiveAppStatus) error {
	st.RoomQuota = app.Status.RoomQuota
	if equality.Semantic.DeepEqual(*st, app.Status) {
		return nil
	}
	ac := liveac.LiveApp(app.Name, app.Namespace).WithStatus(liveAppStatusApply(st))
	return r.Status().Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership)
}

func liveAppStatusApply(st *livev1.LiveAppStatus) *liveac.LiveAppStatusApplyConfiguration {
	ac := liveac.LiveAppStatus().WithObservedGeneration(st.ObservedGeneration).WithConditions(conditionsApply(st.Conditions)...)
	if st.Callback != nil {
		ac.WithCallback(liveac.TencentCallbackStatus().WithURL(st.Callback.URL).WithCommands(st.Callback.Commands...))
	}
	if st.TokenRotatedAt != nil {
		ac.WithTokenRotatedAt(*st.TokenRotatedAt)
	}
	if st.TokenSecretName != "" {
		ac.WithTokenSecretName(st.TokenSecretName)
	}
	return ac
}

func (r *LiveAppReconciler) lastCheck(uid types.UID) (callbackCheck, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.checks[uid]
	return c, ok
}

func (r *LiveAppReconciler) recordCheck(app *livev1.LiveApp, at time.Time, held *livev1.TencentCallbackStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[types.UID]callbackCheck{}
	}
	r.checks[app.UID] = callbackCheck{generation: app.Generation, at: at, status: held.DeepCopy()}
}

func (r *LiveAppReconciler) forgetCheck(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.checks, uid)
}

func (r *LiveAppReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *LiveAppReconciler) checkInterval() time.Duration {
	return cmpOr(r.CheckInterval, DefaultCallbackCheckInterval)
}
func (r *LiveAppReconciler) secretPoll() time.Duration { return cmpOr(r.SecretPoll, DefaultSecretPoll) }
func (r *LiveAppReconciler) replicaPoll() time.Duration {
	return cmpOr(r.ReplicaPoll, DefaultReplicaPoll)
}
func (r *LiveAppReconciler) tokenGrace() time.Duration { return cmpOr(r.TokenGrace, DefaultTokenGrace) }
func (r *LiveAppReconciler) quotaWarning() time.Duration {
	return cmpOr(r.QuotaWarning, DefaultQuotaWarning)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// SetupWithManager registers the reconciler. It runs in the leader, with the registry.
func (r *LiveAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(r.Registry); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&livev1.LiveApp{}, builder.WithPredicates(appChanged)).
		// Another app's coming or going can change who serves an SDKAppID or namespace.
		Watches(&livev1.LiveApp{}, handler.EnqueueRequestsFromMapFunc(r.claimants), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(event.UpdateEvent) bool { return false },
		})).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(r.managedApps), builder.WithPredicates(r.replicaTokensChanged())).
		Named("liveapp").
		Complete(r)
}

// appChanged passes spec changes, deletions and the callback server's room quota
// warnings, not the reconciler's own status writes.
var appChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*livev1.LiveApp), e.ObjectNew.(*livev1.LiveApp)
		return o.Generation != n.Generation || !n.DeletionTimestamp.IsZero() ||
			!equality.Semantic.DeepEqual(o.Status.RoomQuota, n.Status.RoomQuota) ||
			!equality.Semantic.DeepEqual(o.Finalizers, n.Finalizers)
	},
}

// claimants are the other apps claiming o's SDKAppID or namespace.
func (r *LiveAppReconciler) claimants(ctx context.Context, o client.Object) []reconcile.Request {
	changed := o.(*livev1.LiveApp)
	return r.appsWhere(ctx, func(a *livev1.LiveApp) bool {
		return a.UID != changed.UID && (a.Spec.SDKAppID == changed.Spec.SDKAppID || a.Namespace == changed.Namespace)
	})
}

// managedApps are the apps whose token switch may wait for the replicas.
func (r *LiveAppReconciler) managedApps(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.appsWhere(ctx, func(a *livev1.LiveApp) bool { return a.Spec.Callback.Manage })
}

// appsWhere are requests for the cached LiveApps that match.
func (r *LiveAppReconciler) appsWhere(ctx context.Context, match func(*livev1.LiveApp) bool) []reconcile.Request {
	var all livev1.LiveAppList
	if err := r.List(ctx, &all); err != nil {
		logf.FromContext(ctx).Error(err, "Listing LiveApps")
		return nil
	}
	var reqs []reconcile.Request
	for i := range all.Items {
		if match(&all.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&all.Items[i])})
		}
	}
	return reqs
}

// replicaTokensChanged passes the replicas' Leases coming, going or changing the token
// sets they hold, not their renewals.
func (r *LiveAppReconciler) replicaTokensChanged() predicate.Predicate {
	isReplica := func(o client.Object) bool {
		_, ok := o.GetLabels()[apps.ReplicaLabel]
		return ok && o.GetNamespace() == r.Namespace
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return isReplica(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return isReplica(e.Object) },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return isReplica(e.ObjectNew) && e.ObjectOld.GetAnnotations()[apps.LoadedTokensAnnotation] != e.ObjectNew.GetAnnotations()[apps.LoadedTokensAnnotation]
		},
	}
}

// capitalize makes a message start with a capital letter, as condition messages do.
func capitalize(s string) string {
	first, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToUpper(first)) + s[size:]
}

func joinStrings(parts []string) string { return strings.Join(parts, ", ") }
