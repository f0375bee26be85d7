package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
)

// The Secret, in the app's namespace, where the operator keeps a managed app's callback
// token: the app's backend reads it to check the Sign of the callbacks it is forwarded.
const (
	// TokenKey is the token Tencent signs with (before the first switch: will sign with).
	TokenKey = "token"
	// NextTokenKey is, during a rotation, the new token: accepted already, Tencent is
	// switched to it once every callback-server replica accepts it too.
	NextTokenKey = "nextToken"
	// PreviousTokenKey is, after a switch, the token Tencent signed with before; it stays
	// accepted until the PreviousTokenUntilAnnotation time.
	PreviousTokenKey = "previousToken"
	// AcceptedTokensKey holds every token a callback may be signed with now, one per line.
	AcceptedTokensKey = "tokens"
	// TokenSwitchedAtAnnotation is when Tencent was last switched to TokenKey's token;
	// absent before the first switch.
	TokenSwitchedAtAnnotation = "live.liveroom.io/token-switched-at"
	// PreviousTokenUntilAnnotation is when PreviousTokenKey's token stops being accepted.
	PreviousTokenUntilAnnotation = "live.liveroom.io/previous-token-accepted-until"
	// AppLabel names the LiveApp on the Secrets the operator makes for it.
	AppLabel = "live.liveroom.io/liveapp"
)

// tokenBytes is the entropy of a generated token: 32 bytes, 64 hex characters (Tencent
// allows 128).
const tokenBytes = 32

// tokenState is the managed token Secret's content.
type tokenState struct {
	current, next, previous string
	// switchedAt is when Tencent was switched to current; nil: never.
	switchedAt    *time.Time
	previousUntil time.Time
}

// accepted are the tokens a callback may be signed with at now.
func (t tokenState) accepted(now time.Time) []string {
	out := []string{t.current}
	if t.next != "" {
		out = append(out, t.next)
	}
	if t.previous != "" && now.Before(t.previousUntil) {
		out = append(out, t.previous)
	}
	return out
}

// pending is the token Tencent is still to be switched to, "" when none.
func (t tokenState) pending() string {
	if t.switchedAt == nil {
		return t.current
	}
	return t.next
}

// switched is the state once Tencent signs with pending().
func (t tokenState) switched(now time.Time, keepPrevious time.Duration) tokenState {
	if t.switchedAt == nil {
		return tokenState{current: t.current, switchedAt: &now}
	}
	return tokenState{current: t.next, previous: t.current, previousUntil: now.Add(keepPrevious), switchedAt: &now}
}

func parseTokenState(s *corev1.Secret) tokenState {
	t := tokenState{
		current:  string(s.Data[TokenKey]),
		next:     string(s.Data[NextTokenKey]),
		previous: string(s.Data[PreviousTokenKey]),
	}
	if at, err := time.Parse(time.RFC3339, s.Annotations[TokenSwitchedAtAnnotation]); err == nil {
		t.switchedAt = &at
	}
	if at, err := time.Parse(time.RFC3339, s.Annotations[PreviousTokenUntilAnnotation]); err == nil {
		t.previousUntil = at
	} else {
		t.previous = ""
	}
	return t
}

// write puts t into s.
func (t tokenState) write(s *corev1.Secret, now time.Time) {
	s.Data = map[string][]byte{TokenKey: []byte(t.current)}
	if t.next != "" {
		s.Data[NextTokenKey] = []byte(t.next)
	}
	if t.previous != "" {
		s.Data[PreviousTokenKey] = []byte(t.previous)
	}
	s.Data[AcceptedTokensKey] = []byte(strings.Join(t.accepted(now), "\n") + "\n")
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	delete(s.Annotations, TokenSwitchedAtAnnotation)
	delete(s.Annotations, PreviousTokenUntilAnnotation)
	if t.switchedAt != nil {
		s.Annotations[TokenSwitchedAtAnnotation] = t.switchedAt.UTC().Format(time.RFC3339)
	}
	if t.previous != "" {
		s.Annotations[PreviousTokenUntilAnnotation] = t.previousUntil.UTC().Format(time.RFC3339)
	}
}

func newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a callback token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// tokenSecret is a managed app's token Secret as read, and its state.
type tokenSecret struct {
	obj   *corev1.Secret
	state tokenState
}

// managedTokens reads the managed token Secret, creating it with a first token, drops a
// previous token whose time is up and starts a rotation when one is due. It returns nil
// (and says why in rep) when the Secret cannot be used.
func (r *LiveAppReconciler) managedTokens(ctx context.Context, app *livev1.LiveApp, rep *appReport, now time.Time) *tokenSecret {
	name := apps.TokenSecretName(app.Name)
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		return r.createTokenSecret(ctx, app, name, rep, now)
	case err != nil:
		rep.fail(fmt.Errorf("reading the token Secret %s: %w", name, err))
		return nil
	case !metav1.IsControlledBy(s, app):
		rep.stall("TokenSecretConflict", fmt.Sprintf("Secret %s/%s exists and is not this LiveApp's: the operator keeps the managed callback token there; delete or rename it", app.Namespace, name))
		return nil
	}
	ts := &tokenSecret{obj: s, state: parseTokenState(s)}
	next := ts.state
	if next.current == "" {
		// Emptied by hand: start over with a first token.
		tok, err := newToken()
		if err != nil {
			rep.fail(err)
			return nil
		}
		next = tokenState{current: tok}
	}
	if next.previous != "" && !now.Before(next.previousUntil) {
		next.previous = ""
	}
	rotating := false
	if period := rotationPeriod(app); next.switchedAt != nil && next.next == "" && next.previous == "" && period > 0 {
		if due := next.switchedAt.Add(period); !now.Before(due) {
			tok, err := newToken()
			if err != nil {
				rep.fail(err)
				return nil
			}
			next.next, rotating = tok, true
		} else {
			rep.after(due.Sub(now))
		}
	}
	if next.previous != "" {
		rep.after(next.previousUntil.Sub(now))
	}
	if err := r.writeTokenSecret(ctx, ts, next, now); err != nil {
		rep.fail(err)
		return nil
	}
	if rotating {
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenRotationStarted", "Rotate",
			"Generated a new callback token in Secret %s; Tencent is switched to it once every callback-server replica accepts it", name)
	}
	return ts
}

func (r *LiveAppReconciler) createTokenSecret(ctx context.Context, app *livev1.LiveApp, name string, rep *appReport, now time.Time) *tokenSecret {
	tok, err := newToken()
	if err != nil {
		rep.fail(err)
		return nil
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: name, Labels: map[string]string{AppLabel: app.Name}},
		Type:       corev1.SecretTypeOpaque,
	}
	if err := controllerutil.SetControllerReference(app, s, r.Scheme); err != nil {
		rep.fail(err)
		return nil
	}
	st := tokenState{current: tok}
	st.write(s, now)
	if err := r.Create(ctx, s); err != nil {
		rep.fail(fmt.Errorf("creating the token Secret %s: %w", name, err))
		return nil
	}
	r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenCreated", "Create",
		"Generated the app's callback token in Secret %s; Tencent is switched to it once every callback-server replica accepts it", name)
	return &tokenSecret{obj: s, state: st}
}

// writeTokenSecret stores next in ts's Secret when it changes anything.
func (r *LiveAppReconciler) writeTokenSecret(ctx context.Context, ts *tokenSecret, next tokenState, now time.Time) error {
	s := ts.obj.DeepCopy()
	next.write(s, now)
	if maps.EqualFunc(s.Data, ts.obj.Data, func(a, b []byte) bool { return string(a) == string(b) }) && maps.Equal(s.Annotations, ts.obj.Annotations) {
		ts.state = next
		return nil
	}
	if err := r.Update(ctx, s); err != nil {
		return fmt.Errorf("updating the token Secret %s: %w", s.Name, err)
	}
	ts.obj, ts.state = s, next
	return nil
}

// unmanagedTokens reads the tokens of callback.tokensSecretRef; nil with the reason in
// rep when there are none.
func (r *LiveAppReconciler) unmanagedTokens(ctx context.Context, app *livev1.LiveApp, rep *appReport) []string {
	ref := app.Spec.Callback.TokensSecretRef
	v, err := apps.SecretValue(ctx, r.APIReader, app.Namespace, *ref)
	if err != nil {
		r.secretProblem(rep, "callback.tokensSecretRef", "TokensSecretNotFound", "TokensKeyMissing", err)
		return nil
	}
	tokens := apps.ParseTokens(v)
	if len(tokens) == 0 {
		rep.stall("NoTokens", fmt.Sprintf("Secret %s/%s key %q holds no token (one per line)", app.Namespace, ref.Name, ref.Key))
		rep.after(r.secretPoll())
		return nil
	}
	if slices.Contains(tokens, apps.PlaceholderToken) {
		// The callback server would refuse it anyway; say so where the user looks.
		rep.stall("PlaceholderToken", fmt.Sprintf("Secret %s/%s key %q holds the placeholder token %s that the example ships: replace it with the callback token set in Tencent",
			app.Namespace, ref.Name, ref.Key, apps.PlaceholderToken))
		rep.after(r.secretPoll())
		return nil
	}
	return tokens
}

// secretProblem reports a referenced Secret that cannot be read: an absent Secret may
// still come (Reconciling), an absent key needs someone to fix it (Stalled); both are
// looked at again after secretPoll, as the controller does not watch Secrets.
func (r *LiveAppReconciler) secretProblem(rep *appReport, field, notFound, keyMissing string, err error) {
	var missing *apps.MissingSecretError
	switch {
	case errors.As(err, &missing) && missing.NoSecret:
		rep.wait(notFound, fmt.Sprintf("Waiting for %s: %v", field, err))
		rep.after(r.secretPoll())
	case errors.As(err, &missing):
		rep.stall(keyMissing, fmt.Sprintf("%s: %v; add the key to the Secret or fix the reference", field, err))
		rep.after(r.secretPoll())
	default:
		rep.fail(err)
	}
}

// writeProjection gives the callback server the app's accepted tokens and the fan-out's
// Authorization value: a Secret in the operator's namespace.
func (r *LiveAppReconciler) writeProjection(ctx context.Context, app *livev1.LiveApp, tokens []string, forwardAuth string) error {
	sorted := slices.Sorted(slices.Values(tokens))
	data := map[string][]byte{apps.TokensKey: []byte(strings.Join(sorted, "\n"))}
	if forwardAuth != "" {
		data[apps.ForwardAuthorizationKey] = []byte(forwardAuth)
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: r.Namespace, Name: apps.ProjectionName(app.UID),
			Labels: map[string]string{apps.ProjectionAppLabel: string(app.UID)},
			Annotations: map[string]string{
				apps.ProjectionAppAnnotation: app.Namespace + "/" + app.Name,
				apps.TokensHashAnnotation:    apps.TokensHash(tokens),
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	cur := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Create(ctx, want); err != nil {
			return fmt.Errorf("creating the projection Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading the projection Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	same := maps.EqualFunc(cur.Data, want.Data, func(a, b []byte) bool { return string(a) == string(b) }) &&
		hasAll(cur.Labels, want.Labels) && hasAll(cur.Annotations, want.Annotations)
	if same {
		return nil
	}
	next := cur.DeepCopy()
	next.Data = want.Data
	next.Labels = mergeMaps(next.Labels, want.Labels)
	next.Annotations = mergeMaps(next.Annotations, want.Annotations)
	if err := r.Update(ctx, next); err != nil {
		return fmt.Errorf("updating the projection Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// deleteProjection removes the app's projection Secret, if there is one.
func (r *LiveAppReconciler) deleteProjection(ctx context.Context, uid types.UID) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: apps.ProjectionName(uid)}}
	if err := r.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the projection Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func mergeMaps(dst, src map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	maps.Copy(dst, src)
	return dst
}

func rotationPeriod(app *livev1.LiveApp) time.Duration {
	if p := app.Spec.Callback.TokenRotationPeriod; p != nil {
		return p.Duration
	}
	return defaultRotationPeriod
}

func maxSkew(app *livev1.LiveApp) time.Duration {
	if d := app.Spec.Callback.MaxSkew; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return defaultMaxSkew
}
