package controllers

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/conditions"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// CallbackConfigured reasons.
const (
	reasonConfigured       = "Configured"
	reasonNotManaged       = "NotManaged"
	reasonNoSecretKey      = "NoSecretKey"
	reasonCallbackFailed   = "CallbackConfigFailed"
	reasonTokenNotSwitched = "TokenNotSwitched"
	reasonWaitingReplicas  = "WaitingForReplicas"
)

// TencentCallbacks is the part of Tencent's REST API that configures an app's
// callbacks; *tencent.Client is the real one.
type TencentCallbacks interface {
	GetCallback(ctx context.Context) (*tencent.CallbackConfig, error)
	SetCallback(ctx context.Context, cfg tencent.CallbackConfig) error
	UpdateCallback(ctx context.Context, cfg tencent.CallbackConfig) error
	DeleteCallback(ctx context.Context) error
	SetCallbackToken(ctx context.Context, token string, enable bool) error
}

var _ TencentCallbacks = (*tencent.Client)(nil)

// wantedCallback is the configuration a managed app needs in Tencent: its URL, for the
// commands the operator handles and those the app's backend asked for.
func wantedCallback(app *livev1.LiveApp) tencent.CallbackConfig {
	cmds := append(tencent.OperatorCommands(), app.Spec.Callback.ExtraCommands...)
	slices.Sort(cmds)
	return tencent.CallbackConfig{URL: app.Spec.Callback.URL, Commands: slices.Compact(cmds)}
}

// callbackCheck is the last time Tencent was found to hold an app's configuration, and
// what it held: the status to report until the next check (the cached LiveApp may not
// show the last status written yet).
type callbackCheck struct {
	generation int64
	at         time.Time
	status     *livev1.TencentCallbackStatus
}

// appRound is one reconcile of a serving app: the app, the status being built, what the
// reconcile found, and its clock.
type appRound struct {
	app *livev1.LiveApp
	st  *livev1.LiveAppStatus
	rep *appReport
	now time.Time
}

// callbackTokens is what authenticates a managed app's callbacks: its token Secret (nil
// when unreadable), the tokens accepted, and whether the replicas' projection holds them.
type callbackTokens struct {
	secret    *tokenSecret
	accepted  []string
	projected bool
}

// manageCallback makes Tencent call the app's URL for the wanted commands, and switches
// Tencent to a pending token once every callback-server replica accepts it, which needs
// the projection to hold the accepted tokens.
func (r *LiveAppReconciler) manageCallback(ctx context.Context, round appRound, tc TencentCallbacks, tokens callbackTokens) {
	app, st, ts := round.app, round.st, tokens.secret
	c := conditions.For(&st.Conditions, app.Generation)
	if tc == nil {
		c.Mark(livev1.ConditionCallbackConfigured, false, reasonNoSecretKey, "The operator configures Tencent with the app's secret key, which it cannot read")
		return
	}
	configured, problem := r.syncCallbackConfig(ctx, round, tc)
	if !configured {
		c.Mark(livev1.ConditionCallbackConfigured, false, reasonCallbackFailed, problem)
		return
	}
	if ts == nil || !tokens.projected {
		c.Mark(livev1.ConditionCallbackConfigured, false, reasonTokenNotSwitched, "The operator's callback token is not ready")
		return
	}
	reason, waiting := r.switchToken(ctx, round, tc, tokens)
	switch {
	case waiting == "":
		c.Mark(livev1.ConditionCallbackConfigured, true, reasonConfigured, configuredMessage(app))
	case ts.state.switchedAt == nil:
		c.Mark(livev1.ConditionCallbackConfigured, false, reason, waiting)
	default:
		// Tencent signs with a token every replica accepts: callbacks flow meanwhile.
		c.Mark(livev1.ConditionCallbackConfigured, true, reasonConfigured, configuredMessage(app)+"; rotation: "+waiting)
	}
}

func configuredMessage(app *livev1.LiveApp) string {
	return fmt.Sprintf("Tencent calls %s for %d commands and signs with the operator's token", app.Spec.Callback.URL, len(wantedCallback(app).Commands))
}

// syncCallbackConfig checks Tencent's callback configuration when a check is due (a new
// generation, none yet, or CheckInterval since the last) and sets or updates it when it
// is absent or differs. It reports whether Tencent holds the wanted configuration, and
// what is wrong when not.
func (r *LiveAppReconciler) syncCallbackConfig(ctx context.Context, round appRound, tc TencentCallbacks) (bool, string) {
	app, st, rep, now := round.app, round.st, round.rep, round.now
	want := wantedCallback(app)
	if last, ok := r.lastCheck(app.UID); ok && last.generation == app.Generation && now.Sub(last.at) < r.checkInterval() {
		st.Callback = last.status.DeepCopy()
		rep.after(last.at.Add(r.checkInterval()).Sub(now))
		return true, ""
	}
	got, err := tc.GetCallback(ctx)
	action, drift := "", ""
	switch {
	case tencent.IsCode(err, tencent.CodeCallbackConfigAbsent):
		action = "Set"
		if err = tc.SetCallback(ctx, want); tencent.IsCode(err, tencent.CodeCallbackConfigExists) {
			err = tc.UpdateCallback(ctx, want) // set by someone else meanwhile
		}
	case err != nil:
		return false, r.tencentFailed(app, rep, "Check", "reading Tencent's callback configuration", err)
	case !got.Equal(want):
		action, drift = "Update", describeDrift(*got, want)
		if err = tc.UpdateCallback(ctx, want); tencent.IsCode(err, tencent.CodeCallbackConfigAbsent) {
			err = tc.SetCallback(ctx, want) // deleted meanwhile
		}
	}
	if err != nil {
		return false, r.tencentFailed(app, rep, action, "configuring Tencent's callbacks", err)
	}
	if action != "" {
		if got, err = tc.GetCallback(ctx); err != nil {
			return false, r.tencentFailed(app, rep, "Check", "reading Tencent's callback configuration back", err)
		}
	}
	st.Callback = callbackStatus(got)
	if !got.Equal(want) {
		msg := "Tencent does not hold the configuration it accepted: " + describeDrift(*got, want)
		rep.fail(fmt.Errorf("%s", msg))
		return false, msg
	}
	switch action {
	case "Set":
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "CallbackConfigured", action,
			"Configured Tencent to call %s for %d commands", want.URL, len(want.Commands))
	case "Update":
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "CallbackConfigured", action, "Tencent's callback configuration differed (%s); set it back to %s for %d commands", drift, want.URL, len(want.Commands))
	}
	r.recordCheck(app, now, st.Callback)
	rep.after(r.checkInterval())
	return true, ""
}

// describeDrift says how got differs from want without quoting got's URL, which someone
// may have set with a secret in its query string.
func describeDrift(got, want tencent.CallbackConfig) string {
	var parts []string
	if got.URL != want.URL {
		parts = append(parts, "another URL")
	}
	var missing, extra int
	for _, c := range want.Commands {
		if !slices.Contains(got.Commands, c) {
			missing++
		}
	}
	for _, c := range got.Commands {
		if !slices.Contains(want.Commands, c) {
			extra++
		}
	}
	if missing > 0 {
		parts = append(parts, fmt.Sprintf("%d command(s) missing", missing))
	}
	if extra > 0 {
		parts = append(parts, fmt.Sprintf("%d command(s) too many", extra))
	}
	if len(parts) == 0 {
		return "no difference"
	}
	return joinStrings(parts)
}

// callbackStatus is what status.callback says of Tencent's configuration: its URL
// without query string, fragment or user information, and its commands, sorted.
func callbackStatus(cfg *tencent.CallbackConfig) *livev1.TencentCallbackStatus {
	out := &livev1.TencentCallbackStatus{URL: publicURL(cfg.URL)}
	out.Commands = slices.Sorted(slices.Values(cfg.Commands))
	out.Commands = slices.Compact(out.Commands)
	return out
}

func publicURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// switchToken switches Tencent to the pending token (the first one, or the next one of a
// rotation) once every live callback-server replica accepts the token set the projection
// holds; it returns why and what it waits for, "" when no switch is pending or it
// switched.
func (r *LiveAppReconciler) switchToken(ctx context.Context, round appRound, tc TencentCallbacks, tokens callbackTokens) (reason, waiting string) {
	app, st, rep, now, ts := round.app, round.st, round.rep, round.now, tokens.secret
	pending := ts.state.pending()
	if pending == "" {
		return "", ""
	}
	var leases coordinationv1.LeaseList
	if err := r.List(ctx, &leases, client.InNamespace(r.Namespace), client.HasLabels{apps.ReplicaLabel}); err != nil {
		rep.fail(fmt.Errorf("listing the callback-server replicas' Leases: %w", err))
		return reasonTokenNotSwitched, "Cannot list the callback-server replicas"
	}
	loaded, alive := apps.AllLoaded(leases.Items, app.UID, apps.TokensHash(tokens.accepted), now)
	if !loaded {
		msg := fmt.Sprintf("No callback-server replica is running (no live Lease labelled %s in namespace %s): Tencent keeps its current token until one accepts the new one", apps.ReplicaLabel, r.Namespace)
		if alive > 0 {
			msg = fmt.Sprintf("Waiting for all %d live callback-server replica(s) to accept the new callback token before Tencent is switched to it", alive)
		}
		rep.wait(reasonWaitingReplicas, msg)
		rep.after(r.replicaPoll())
		return reasonWaitingReplicas, msg
	}
	if err := tc.SetCallbackToken(ctx, pending, true); err != nil {
		return reasonTokenNotSwitched, r.tencentFailed(app, rep, "Switch", "switching Tencent to the new callback token", err)
	}
	first := ts.state.switchedAt == nil
	keep := maxSkew(app) + r.tokenGrace()
	if err := r.writeTokenSecret(ctx, ts, ts.state.switched(now, keep), now); err != nil {
		// Tencent signs with the new token, which the projection still accepts; the next
		// reconcile switches again (the same token) and records it.
		rep.fail(err)
		return reasonTokenNotSwitched, "Recording the switch in the token Secret failed"
	}
	at := metav1.NewTime(now.Truncate(time.Second))
	st.TokenRotatedAt = &at
	if first {
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenSwitched", "Switch", "Tencent signs callbacks with the operator's token now; all %d callback-server replica(s) accept it", alive)
	} else {
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenSwitched", "Switch", "Tencent signs callbacks with the new token now; the previous one stays accepted for %s", keep)
		rep.after(keep)
	}
	return "", ""
}

// tencentFailed reports a failed Tencent call (its error is redacted by the client) and
// returns the condition message.
func (r *LiveAppReconciler) tencentFailed(app *livev1.LiveApp, rep *appReport, action, doing string, err error) string {
	msg := fmt.Sprintf("%s: %v", doing, err)
	r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "TencentFailed", action, "%s", capitalize(msg))
	rep.fail(fmt.Errorf("%s: %w", doing, err))
	return capitalize(msg)
}
