package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
)

// appCheckInterval is how often the suite's LiveApp reconciler reads Tencent's callback
// configuration back.
const appCheckInterval = 2 * time.Second

const callbackURL = "https://callbacks.example.com/callback"

var appSeq atomic.Int32

// appFixture is one test's namespace and its own fake Tencent app.
type appFixture struct {
	t    *testing.T
	ns   string
	sdk  int64
	key  string
	fake *faketencent.Server
}

func newAppFixture(t *testing.T) *appFixture {
	t.Helper()
	n := appSeq.Add(1)
	f := &appFixture{t: t, ns: fmt.Sprintf("app-%d", n), sdk: 1400100000 + int64(n), key: fmt.Sprintf("app-secret-key-%d", n)}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}); err != nil {
		t.Fatal(err)
	}
	f.fake = faketencent.New(f.sdk, testAdmin, f.key)
	f.fake.SetListRateLimit(0)
	t.Cleanup(f.fake.Close)
	return f
}

// keySecret creates the Secret holding the app's secret key.
func (f *appFixture) keySecret() {
	f.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "tencent"}, StringData: map[string]string{"secretKey": f.key + "\n"}}
	if err := k8s.Create(context.Background(), s); err != nil {
		f.t.Fatal(err)
	}
}

// managedApp is a LiveApp the operator configures Tencent for, in the fixture's namespace.
func (f *appFixture) managedApp(name string, edit func(*livev1.LiveApp)) *livev1.LiveApp {
	app := &livev1.LiveApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: livev1.LiveAppSpec{
			SDKAppID: f.sdk,
			API:      livev1.LiveAppAPI{Host: f.fake.URL(), SecretKeyRef: &livev1.SecretKeyRef{Name: "tencent", Key: "secretKey"}},
			Callback: livev1.LiveAppCallback{URL: callbackURL, Manage: true},
		},
	}
	if edit != nil {
		edit(app)
	}
	return app
}

func (f *appFixture) create(app *livev1.LiveApp) *livev1.LiveApp {
	f.t.Helper()
	if err := k8s.Create(context.Background(), app); err != nil {
		f.t.Fatal(err)
	}
	return app
}

// patchApp changes an app's spec with a merge patch, which the status writes of the
// controller cannot conflict with.
func patchApp(t *testing.T, app *livev1.LiveApp, edit func(*livev1.LiveApp)) {
	t.Helper()
	cur := getApp(t, app)
	patch := client.MergeFrom(cur.DeepCopy())
	edit(cur)
	if err := k8s.Patch(context.Background(), cur, patch); err != nil {
		t.Fatal(err)
	}
}

func getApp(t *testing.T, app *livev1.LiveApp) *livev1.LiveApp {
	t.Helper()
	var cur livev1.LiveApp
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &cur); err != nil {
		t.Fatal(err)
	}
	return &cur
}

// appCondition is "Status/Reason" of a condition of the app's current generation.
func appCondition(app *livev1.LiveApp, typ string) func() string {
	return func() string {
		var cur livev1.LiveApp
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &cur); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, typ)
		if c == nil || c.ObservedGeneration != cur.Generation {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

func conditionMessage(t *testing.T, app *livev1.LiveApp, typ string) string {
	c := meta.FindStatusCondition(getApp(t, app).Status.Conditions, typ)
	if c == nil {
		return ""
	}
	return c.Message
}

func wantedCommands(extra ...string) []string {
	cmds := append(tencent.OperatorCommands(), extra...)
	slices.Sort(cmds)
	return cmds
}

// tokenSecretOf is the app's managed token Secret.
func tokenSecretOf(t *testing.T, app *livev1.LiveApp) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: app.Namespace, Name: apps.TokenSecretName(app.Name)}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// projection is the app's projection Secret's tokens, sorted; nil when it has none.
func projection(app *livev1.LiveApp) func() []string {
	return func() []string {
		var cur livev1.LiveApp
		if k8s.Get(context.Background(), client.ObjectKeyFromObject(app), &cur) != nil {
			return nil
		}
		var s corev1.Secret
		if k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: apps.ProjectionName(cur.UID)}, &s) != nil {
			return nil
		}
		tokens := apps.ParseTokens(string(s.Data[apps.TokensKey]))
		if s.Annotations[apps.TokensHashAnnotation] != apps.TokensHash(tokens) {
			return []string{"hash annotation does not match"}
		}
		slices.Sort(tokens)
		return tokens
	}
}

func projectionExists(uid types.UID) bool {
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: apps.ProjectionName(uid)}, &corev1.Secret{})
	return !apierrors.IsNotFound(err)
}

// putReplica creates or updates a callback-server replica's Lease: the token sets it has
// loaded, renewed at renewed.
func putReplica(t *testing.T, name string, loaded map[string]string, renewed time.Time) {
	t.Helper()
	ctx := context.Background()
	rt := metav1.NewMicroTime(renewed)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: name}}
	err := k8s.Get(ctx, client.ObjectKeyFromObject(lease), lease)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	lease.Labels = map[string]string{apps.ReplicaLabel: name}
	lease.Annotations = map[string]string{apps.LoadedTokensAnnotation: apps.EncodeLoadedTokens(loaded)}
	lease.Spec.RenewTime = &rt
	lease.Spec.LeaseDurationSeconds = new(int32(30))
	if apierrors.IsNotFound(err) {
		err = k8s.Create(ctx, lease)
	} else {
		err = k8s.Update(ctx, lease)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func deleteReplica(t *testing.T, name string) {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: name}}
	if err := k8s.Delete(context.Background(), lease); err != nil && !apierrors.IsNotFound(err) {
		t.Error(err)
	}
}

// autoReplica plays one callback-server replica that loads every projection as soon as
// it sees it, until the test ends.
func autoReplica(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	name := "auto-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	wg.Go(func() {
		for ctx.Err() == nil {
			var list corev1.SecretList
			if err := k8s.List(ctx, &list, client.InNamespace(operatorNamespace), client.HasLabels{apps.ProjectionAppLabel}); err == nil {
				loaded := map[string]string{}
				for _, s := range list.Items {
					loaded[s.Labels[apps.ProjectionAppLabel]] = s.Annotations[apps.TokensHashAnnotation]
				}
				putReplica(t, name, loaded, time.Now())
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		deleteReplica(t, name)
	})
}

// appTexts are the app's condition messages, status and the Events of its namespace.
func appTexts(t *testing.T, app *livev1.LiveApp) []string {
	t.Helper()
	cur := getApp(t, app)
	out := []string{fmt.Sprintf("%+v", cur.Status)}
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(app.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		out = append(out, "event "+e.Reason+": "+e.Note)
	}
	return out
}

func expectNoSecrets(t *testing.T, texts []string, secrets ...string) {
	t.Helper()
	for _, text := range texts {
		if strings.Contains(strings.ToLower(text), "usersig") {
			t.Errorf("text mentions a UserSig: %s", text)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("text holds a secret: %s", text)
			}
		}
	}
}

func hasEvent(ns, reason, note string) func() bool {
	return func() bool {
		var list eventsv1.EventList
		if k8s.List(context.Background(), &list, client.InNamespace(ns)) != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Reason == reason && strings.Contains(e.Note, note) {
				return true
			}
		}
		return false
	}
}

func TestManagedAppConfiguresTencentAndCorrectsDrift(t *testing.T) {
	g := NewWithT(t)
	f := newAppFixture(t)
	autoReplica(t)
	f.keySecret()
	app := f.create(f.managedApp("shop", func(a *livev1.LiveApp) {
		a.Spec.Callback.ExtraCommands = []string{"Live.CallbackBeforeSendGift"}
	}))
	want := tencent.CallbackConfig{URL: callbackURL, Commands: wantedCommands("Live.CallbackBeforeSendGift")}

	g.Eventually(appCondition(app, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
	g.Eventually(appCondition(app, livev1.ConditionCallbackConfigured), wait).Should(Equal("True/Configured"))
	cfg, ok := f.fake.CallbackConfig()
	g.Expect(ok).To(BeTrue())
	g.Expect(cfg.Equal(want)).To(BeTrue(), "%+v", cfg)
	g.Expect(f.fake.Calls(tencent.RESTSetCallback)).To(Equal(1))
	g.Expect(f.fake.Calls(tencent.RESTUpdateCallback)).To(BeZero())

	cur := getApp(t, app)
	g.Expect(kstatusOf(t, cur)).To(Equal(status.CurrentStatus))
	g.Expect(cur.Finalizers).To(ContainElement(livev1.AppFinalizer))
	g.Expect(cur.Status.Callback).To(Equal(&livev1.TencentCallbackStatus{URL: callbackURL, Commands: want.Commands}))
	g.Expect(cur.Status.TokenSecretName).To(Equal("shop-callback-token"))
	g.Expect(cur.Status.TokenRotatedAt).NotTo(BeNil())
	g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))

	// The token: generated, kept in a Secret the LiveApp owns, enabled in Tencent and
	// accepted by the callback server.
	ts := tokenSecretOf(t, app)
	token := string(ts.Data[TokenKey])
	g.Expect(token).To(MatchRegexp("^[0-9a-f]{64}$"))
	g.Expect(metav1.IsControlledBy(ts, cur)).To(BeTrue())
	g.Expect(string(ts.Data[AcceptedTokensKey])).To(Equal(token + "\n"))
	g.Expect(f.fake.CallbackToken()).To(Equal(faketencent.CallbackToken{Token: token, Enabled: true}))
	g.Expect(projection(app)()).To(Equal([]string{token}))
	var proj corev1.Secret
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: apps.ProjectionName(cur.UID)}, &proj)).To(Succeed())
	g.Expect(proj.Labels).To(HaveKeyWithValue(apps.ProjectionAppLabel, string(cur.UID)))
	g.Expect(proj.Annotations).To(HaveKeyWithValue(apps.ProjectionAppAnnotation, f.ns+"/shop"))

	// Someone changes the configuration in Tencent: the periodic check sets it back.
	f.fake.SetCallbackConfig(&tencent.CallbackConfig{URL: "https://elsewhere.example/cb?key=hidden", Commands: []string{tencent.CommandCreateRoom}})
	g.Eventually(func() bool { c, _ := f.fake.CallbackConfig(); return c.Equal(want) }, wait).Should(BeTrue(), "drift corrected")
	g.Eventually(hasEvent(f.ns, "CallbackConfigured", "another URL"), wait).Should(BeTrue())
	// ... and deleted in Tencent: set again.
	f.fake.SetCallbackConfig(nil)
	g.Eventually(func() bool { c, _ := f.fake.CallbackConfig(); return c.Equal(want) }, wait).Should(BeTrue(), "configuration restored")
	g.Expect(f.fake.CallbackToken().Token).To(Equal(token), "no rotation without a period elapsed")

	texts := appTexts(t, app)
	g.Expect(strings.Join(texts, "\n")).NotTo(ContainSubstring("hidden"), "a drifted URL's query never reaches status or Events")
	expectNoSecrets(t, texts, f.key, token)
}

func TestSetCallbackThatExistsIsUpdated(t *testing.T) {
	g := NewWithT(t)
	f := newAppFixture(t)
	f.keySecret()
	// Tencent says there is none, then refuses to create it: it was set meanwhile.
	f.fake.SetCallbackConfig(&tencent.CallbackConfig{URL: "https://old.example/cb", Commands: []string{tencent.CommandCreateRoom}})
	f.fake.FailNext(tencent.RESTGetCallback, tencent.CodeCallbackConfigAbsent, 1)
	f.create(f.managedApp("racing", nil))
	want := tencent.CallbackConfig{URL: callbackURL, Commands: wantedCommands()}
	g.Eventually(func() bool { c, _ := f.fake.CallbackConfig(); return c.Equal(want) }, wait).Should(BeTrue())
	g.Expect(f.fake.Calls(tencent.RESTSetCallback)).To(Equal(1))
	g.Expect(f.fake.Calls(tencent.RESTUpdateCallback)).To(Equal(1))
	g.Expect(hasEvent(f.ns, "TencentFailed", "")()).To(BeFalse(), "100300 is no failure: update_callback is the call to make")
}

// A new token is accepted by every live callback-server replica before Tencent signs
// with it, and the token it replaces stays accepted for maxSkew after the switch.
func TestTokenRotationWaitsForEveryReplica(t *testing.T) {
	g := NewWithT(t)
	f := newAppFixture(t)
	f.keySecret()
	t.Cleanup(func() { deleteReplica(t, "replica-a"); deleteReplica(t, "replica-b") })
	app := f.create(f.managedApp("rotating", func(a *livev1.LiveApp) {
		a.Spec.Callback.TokenRotationPeriod = &metav1.Duration{}
		a.Spec.Callback.MaxSkew = &metav1.Duration{Duration: time.Second}
	}))

	// The first token: in the projection, but with no replica running Tencent is never
	// switched to it.
	g.Eventually(projection(app), wait).Should(HaveLen(1))
	first := projection(app)()[0]
	g.Eventually(appCondition(app, livev1.ConditionReconciling), wait).Should(Equal("True/" + reasonWaitingReplicas))
	g.Expect(conditionMessage(t, app, livev1.ConditionReconciling)).To(ContainSubstring("No callback-server replica is running"))
	g.Expect(appCondition(app, livev1.ConditionCallbackConfigured)()).To(Equal("False/" + reasonWaitingReplicas))
	g.Consistently(func() string { return f.fake.CallbackToken().Token }, 2*time.Second).Should(BeEmpty())

	// A replica gone long ago that had it, and a live one that has not: still no switch.
	uid := string(getApp(t, app).UID)
	putReplica(t, "replica-a", map[string]string{uid: apps.TokensHash([]string{first})}, time.Now().Add(-time.Hour))
	putReplica(t, "replica-b", map[string]string{uid: "something-else"}, time.Now())
	g.Eventually(func() string { return conditionMessage(t, app, livev1.ConditionReconciling) }, wait).Should(ContainSubstring("all 1 live callback-server replica(s)"))
	g.Consistently(func() string { return f.fake.CallbackToken().Token }, 2*time.Second).Should(BeEmpty())

	// The live replica loads it: Tencent is switched.
	putReplica(t, "replica-b", map[string]string{uid: apps.TokensHash([]string{first})}, time.Now())
	g.Eventually(f.fake.CallbackToken, wait).Should(Equal(faketencent.CallbackToken{Token: first, Enabled: true}))
	g.Eventually(appCondition(app, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
	firstSwitch := getApp(t, app).Status.TokenRotatedAt
	g.Expect(firstSwitch).NotTo(BeNil())

	// A rotation is due: the new token joins the projection, Tencent keeps the old one
	// while the replica has not loaded the pair.
	patchApp(t, app, func(a *livev1.LiveApp) { a.Spec.Callback.TokenRotationPeriod = &metav1.Duration{Duration: time.Second} })
	g.Eventually(projection(app), wait).Should(HaveLen(2))
	// One rotation is enough.
	patchApp(t, app, func(a *livev1.LiveApp) { a.Spec.Callback.TokenRotationPeriod = &metav1.Duration{} })
	pair := projection(app)()
	g.Expect(pair).To(ContainElement(first))
	second := pair[0]
	if second == first {
		second = pair[1]
	}
	ts := tokenSecretOf(t, app)
	g.Expect(string(ts.Data[NextTokenKey])).To(Equal(second))
	g.Consistently(func() string { return f.fake.CallbackToken().Token }, 2*time.Second).Should(Equal(first))
	g.Expect(appCondition(app, livev1.ConditionCallbackConfigured)()).To(Equal("True/Configured"), "callbacks flow during a rotation")

	// The replica accepts both: Tencent switches; the old token stays accepted a while.
	putReplica(t, "replica-b", map[string]string{uid: apps.TokensHash(pair)}, time.Now())
	g.Eventually(func() string { return f.fake.CallbackToken().Token }, wait).Should(Equal(second))
	switched := time.Now()
	g.Eventually(func() string { return string(tokenSecretOf(t, app).Data[TokenKey]) }, wait).Should(Equal(second))
	ts = tokenSecretOf(t, app)
	g.Expect(string(ts.Data[PreviousTokenKey])).To(Equal(first))
	g.Expect(ts.Annotations).To(HaveKey(PreviousTokenUntilAnnotation))
	g.Expect(projection(app)()).To(ConsistOf(first, second))

	// After maxSkew (and the grace): only the new token.
	g.Eventually(projection(app), wait).Should(Equal([]string{second}))
	g.Expect(time.Since(switched)).To(BeNumerically(">=", time.Second))
	g.Eventually(func() map[string][]byte { return tokenSecretOf(t, app).Data }, wait).ShouldNot(HaveKey(PreviousTokenKey))
	g.Expect(getApp(t, app).Status.TokenRotatedAt.Time).To(BeTemporally(">=", firstSwitch.Time))
	g.Expect(hasEvent(f.ns, "TokenSwitched", "new token")()).To(BeTrue())
	expectNoSecrets(t, appTexts(t, app), f.key, first, second)
}

func TestAppsClaimingOneSDKAppIDOrNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newAppFixture(t)
	other := newAppFixture(t)
	callbackOnly := func(a *livev1.LiveApp) {
		a.Spec.API.SecretKeyRef = nil
		a.Spec.Callback = livev1.LiveAppCallback{AllowUnsigned: true}
	}
	first := f.create(f.managedApp("first", callbackOnly))
	g.Eventually(appCondition(first, livev1.ConditionReady), wait).Should(Equal("True/Serving"))

	sameID := other.managedApp("same-id", callbackOnly)
	sameID.Spec.SDKAppID = f.sdk
	other.create(sameID)
	sameNamespace := f.create(f.managedApp("second", func(a *livev1.LiveApp) {
		callbackOnly(a)
		a.Spec.SDKAppID = other.sdk
	}))
	g.Eventually(appCondition(sameID, livev1.ConditionStalled), wait).Should(Equal("True/SDKAppIDTaken"))
	g.Expect(conditionMessage(t, sameID, livev1.ConditionReady)).To(ContainSubstring(f.ns + "/first"))
	g.Expect(kstatusOf(t, getApp(t, sameID))).To(Equal(status.FailedStatus))
	g.Eventually(appCondition(sameNamespace, livev1.ConditionStalled), wait).Should(Equal("True/NamespaceTaken"))
	g.Expect(projectionExists(getApp(t, sameID).UID)).To(BeFalse(), "a refused app gets no projection")
	g.Expect(projectionExists(getApp(t, sameNamespace).UID)).To(BeFalse())
	app, ok := registry.AppFor(f.ns)
	g.Expect(ok).To(BeTrue())
	g.Expect(app.Key.Name).To(Equal("first"))

	// The first goes: the next oldest claimant of the SDKAppID serves.
	g.Expect(k8s.Delete(ctx, getApp(t, first))).To(Succeed())
	g.Eventually(appCondition(sameID, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
	g.Eventually(func() bool { return projectionExists(getApp(t, sameID).UID) }, wait).Should(BeTrue())
	g.Eventually(appCondition(sameNamespace, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
}

func TestDeletingAnAppKeepsOrRemovesTencentsConfiguration(t *testing.T) {
	for _, policy := range []livev1.CallbackDeletionPolicy{livev1.CallbackDeletionKeep, livev1.CallbackDeletionRemove} {
		t.Run(string(policy), func(t *testing.T) {
			g := NewWithT(t)
			f := newAppFixture(t)
			f.keySecret()
			app := f.create(f.managedApp("leaving", func(a *livev1.LiveApp) {
				a.Spec.Callback.DeletionPolicy = policy
				a.Spec.Rooms.ResyncInterval = &metav1.Duration{Duration: time.Second}
			}))
			g.Eventually(func() bool { _, ok := f.fake.CallbackConfig(); return ok }, wait).Should(BeTrue())
			g.Eventually(func() []string { return projection(app)() }, wait).Should(HaveLen(1))
			uid := getApp(t, app).UID
			key := client.ObjectKeyFromObject(app)
			g.Eventually(func() bool { return registry.Running(key) }, wait).Should(BeTrue())

			g.Expect(k8s.Delete(context.Background(), getApp(t, app))).To(Succeed())
			g.Eventually(func() bool {
				return apierrors.IsNotFound(k8s.Get(context.Background(), key, &livev1.LiveApp{}))
			}, wait).Should(BeTrue())
			_, kept := f.fake.CallbackConfig()
			g.Expect(kept).To(Equal(policy == livev1.CallbackDeletionKeep))
			g.Expect(projectionExists(uid)).To(BeFalse())
			g.Expect(registry.Running(key)).To(BeFalse())
			_, ok := registry.AppFor(f.ns)
			g.Expect(ok).To(BeFalse())
		})
	}
}

// A refused app for the SDKAppID another serves never removes that app's configuration.
func TestRefusedAppNeverRemovesTheServingAppsConfiguration(t *testing.T) {
	g := NewWithT(t)
	f := newAppFixture(t)
	other := newAppFixture(t)
	f.keySecret()
	other.keySecret()
	f.create(f.managedApp("serving", nil))
	g.Eventually(func() bool { _, ok := f.fake.CallbackConfig(); return ok }, wait).Should(BeTrue())
	impostor := other.managedApp("impostor", func(a *livev1.LiveApp) {
		a.Spec.SDKAppID = f.sdk
		a.Spec.API.Host = f.fake.URL()
		a.Spec.Callback.DeletionPolicy = livev1.CallbackDeletionRemove
	})
	other.create(impostor)
	g.Eventually(appCondition(impostor, livev1.ConditionStalled), wait).Should(Equal("True/SDKAppIDTaken"))
	g.Expect(k8s.Delete(context.Background(), getApp(t, impostor))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(impostor), &livev1.LiveApp{}))
	}, wait).Should(BeTrue())
	_, ok := f.fake.CallbackConfig()
	g.Expect(ok).To(BeTrue())
	g.Expect(f.fake.Calls(tencent.RESTDeleteCallback)).To(BeZero())
}

func TestCallbackAuthenticationAndSecretsReferenced(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	// Neither managed, nor tokens, nor unsigned allowed: stalled, saying the three ways,
	// and the callback server gets nothing to accept callbacks with.
	f := newAppFixture(t)
	none := f.create(f.managedApp("no-auth", func(a *livev1.LiveApp) {
		a.Spec.API.SecretKeyRef = nil
		a.Spec.Callback = livev1.LiveAppCallback{AllowUnsigned: true}
	}))
	g.Eventually(func() bool { return projectionExists(getApp(t, none).UID) }, wait).Should(BeTrue())
	patchApp(t, none, func(a *livev1.LiveApp) { a.Spec.Callback.AllowUnsigned = false })
	g.Eventually(appCondition(none, livev1.ConditionStalled), wait).Should(Equal("True/NoCallbackAuthentication"))
	msg := conditionMessage(t, none, livev1.ConditionStalled)
	for _, way := range []string{"callback.manage", "callback.tokensSecretRef", "callback.allowUnsigned"} {
		g.Expect(msg).To(ContainSubstring(way))
	}
	g.Expect(projectionExists(getApp(t, none).UID)).To(BeFalse())
	g.Expect(k8s.Delete(ctx, getApp(t, none))).To(Succeed())

	// Tokens of the app's own: waited for, then projected with the fan-out's header.
	f = newAppFixture(t)
	own := f.create(f.managedApp("own-tokens", func(a *livev1.LiveApp) {
		a.Spec.API.SecretKeyRef = nil
		a.Spec.Callback = livev1.LiveAppCallback{TokensSecretRef: &livev1.SecretKeyRef{Name: "tokens", Key: "list"}}
		a.Spec.Forward = &livev1.LiveAppForward{URL: "https://backend.example/cb", AuthorizationSecretRef: &livev1.SecretKeyRef{Name: "tokens", Key: "auth"}}
	}))
	g.Eventually(appCondition(own, livev1.ConditionReconciling), wait).Should(Equal("True/TokensSecretNotFound"))
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "tokens"},
		StringData: map[string]string{"list": "# rotation\nold-token\nnew-token\n", "auth": "Bearer backend-secret\n"}})).To(Succeed())
	g.Eventually(projection(own), wait).Should(Equal([]string{"new-token", "old-token"}))
	g.Eventually(appCondition(own, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
	g.Expect(appCondition(own, livev1.ConditionCallbackConfigured)()).To(Equal("Unknown/" + reasonNotManaged))
	var proj corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: apps.ProjectionName(getApp(t, own).UID)}, &proj)).To(Succeed())
	g.Expect(string(proj.Data[apps.ForwardAuthorizationKey])).To(Equal("Bearer backend-secret"))
	expectNoSecrets(t, appTexts(t, own), "old-token", "new-token", "backend-secret")

	// A secret key whose Secret is not there yet is waited for; one without the key
	// stalls; the app serves callbacks meanwhile, without the API.
	f = newAppFixture(t)
	keyed := f.create(f.managedApp("keyed", func(a *livev1.LiveApp) {
		a.Spec.Callback = livev1.LiveAppCallback{AllowUnsigned: true}
	}))
	g.Eventually(appCondition(keyed, livev1.ConditionReconciling), wait).Should(Equal("True/SecretKeyNotFound"))
	g.Eventually(projection(keyed), wait).Should(BeEmpty())
	g.Expect(projectionExists(getApp(t, keyed).UID)).To(BeTrue(), "unsigned callbacks are served")
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "tencent"}, StringData: map[string]string{"other": "x"}})).To(Succeed())
	g.Eventually(appCondition(keyed, livev1.ConditionStalled), wait).Should(Equal("True/SecretKeyMissing"))
	g.Expect(conditionMessage(t, keyed, livev1.ConditionStalled)).To(ContainSubstring(`has no key "secretKey"`))
	app, _ := registry.AppFor(f.ns)
	g.Expect(app.Tencent).To(BeNil())
	var s corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "tencent"}, &s)).To(Succeed())
	s.StringData = map[string]string{"secretKey": f.key}
	g.Expect(k8s.Update(ctx, &s)).To(Succeed())
	g.Eventually(appCondition(keyed, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
	app, _ = registry.AppFor(f.ns)
	g.Expect(app.Tencent).NotTo(BeNil())
	expectNoSecrets(t, appTexts(t, keyed), f.key)
}

// The example's placeholder token stalls the app, saying what to do, and is never handed
// to the callback server; the real token, once set, is.
func TestPlaceholderTokenStallsTheApp(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newAppFixture(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "tokens"},
		StringData: map[string]string{"tokens": apps.PlaceholderToken + "\n"}}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	app := f.create(f.managedApp("example", func(a *livev1.LiveApp) {
		a.Spec.API.SecretKeyRef = nil
		a.Spec.Callback = livev1.LiveAppCallback{TokensSecretRef: &livev1.SecretKeyRef{Name: "tokens", Key: "tokens"}}
	}))
	g.Eventually(appCondition(app, livev1.ConditionStalled), wait).Should(Equal("True/PlaceholderToken"))
	g.Expect(appCondition(app, livev1.ConditionReady)()).To(HavePrefix("False/"))
	g.Expect(conditionMessage(t, app, livev1.ConditionStalled)).To(ContainSubstring("replace it with the callback token set in Tencent"))
	g.Expect(projectionExists(getApp(t, app).UID)).To(BeFalse())

	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	secret.StringData = map[string]string{"tokens": "the-real-token\n"}
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(projection(app), wait).Should(Equal([]string{"the-real-token"}))
	g.Eventually(appCondition(app, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
}

func TestQuotaNearLimitSetAndCleared(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newAppFixture(t)
	app := f.create(f.managedApp("busy", func(a *livev1.LiveApp) {
		a.Spec.API.SecretKeyRef = nil
		a.Spec.Callback = livev1.LiveAppCallback{AllowUnsigned: true}
	}))
	g.Eventually(appCondition(app, livev1.ConditionQuotaNearLimit), wait).Should(Equal("False/NoWarning"))

	// The callback server records Tencent's warning; it is about to be an hour old.
	cur := getApp(t, app)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Status.RoomQuota = &livev1.RoomQuotaStatus{Rooms: 400, MaxRooms: 500, ReportedAt: metav1.NewTime(time.Now().Add(-time.Hour + 4*time.Second).Truncate(time.Second))}
	g.Expect(k8s.Status().Patch(ctx, cur, patch, client.FieldOwner("liveroom-callback"))).To(Succeed())
	g.Eventually(appCondition(app, livev1.ConditionQuotaNearLimit), wait).Should(Equal("True/TencentWarned"))
	g.Expect(conditionMessage(t, app, livev1.ConditionQuotaNearLimit)).To(ContainSubstring("400 rooms of a quota of 500"))
	g.Expect(appCondition(app, livev1.ConditionReady)()).To(Equal("True/Serving"), "a warning is not a failure")

	// An hour after the warning it clears, without any change to the app.
	g.Eventually(appCondition(app, livev1.ConditionQuotaNearLimit), wait).Should(Equal("False/WarningExpired"))
	g.Expect(getApp(t, app).Status.RoomQuota).NotTo(BeNil(), "the callback server's field is left alone")
}

// The registry gives each app's rooms its TTL and REST client, and runs its resync.
func TestAppRoomsUseTheirAppsTTLClientAndResync(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newAppFixture(t)
	app := f.create(f.managedApp("rooms", func(a *livev1.LiveApp) {
		a.Spec.API.SecretKeyRef = nil
		a.Spec.Callback = livev1.LiveAppCallback{AllowUnsigned: true}
		a.Spec.Rooms = livev1.LiveAppRooms{EndedRoomTTL: &metav1.Duration{Duration: time.Second}, ResyncInterval: &metav1.Duration{Duration: time.Second}}
	}))
	g.Eventually(appCondition(app, livev1.ConditionReady), wait).Should(Equal("True/Serving"))
	key := client.ObjectKeyFromObject(app)
	g.Expect(registry.Running(key)).To(BeFalse(), "no resync without a secret key")

	// A declared room of an app without a key is stalled...
	declared := declaredRoom(f.ns, "from-git", "from-git-1", "")
	declared.Spec.SDKAppID = f.sdk
	declared.Spec.Metadata = map[string]string{"theme": "dark"}
	g.Expect(k8s.Create(ctx, declared)).To(Succeed())
	g.Eventually(syncedReason(declared), wait).Should(Equal("False/" + reasonNoAPI))
	g.Expect(kstatusOf(t, getRoom(t, declared))).To(Equal(status.FailedStatus))

	// ... until the app gets one: then the room is created in the app's Tencent.
	f.keySecret()
	patchApp(t, app, func(a *livev1.LiveApp) {
		a.Spec.API.SecretKeyRef = &livev1.SecretKeyRef{Name: "tencent", Key: "secretKey"}
	})
	g.Eventually(syncedReason(declared), wait).Should(Equal("True/Created"))
	_, ok := f.fake.Room("from-git-1")
	g.Expect(ok).To(BeTrue())
	g.Expect(f.fake.RoomMetadata("from-git-1")).To(Equal(map[string]string{"theme": "dark"}))

	// The resync runs against the app's Tencent, every second.
	g.Eventually(func() bool { return registry.Running(key) }, wait).Should(BeTrue())
	g.Eventually(func() int { return f.fake.Calls(tencent.RESTGetRoomList) }, wait).Should(BeNumerically(">=", 2))

	// Ended rooms go after the app's TTL (1s), not the default 24h.
	room := liveRoom(t, f.ns, "other-app", livev1.OriginCallback, nil) // of another SDKAppID
	appRoom := &livev1.LiveRoom{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "ended", Annotations: map[string]string{livev1.OriginAnnotation: livev1.OriginCallback}},
		Spec: livev1.LiveRoomSpec{RoomID: "ended-1", SDKAppID: f.sdk}}
	g.Expect(k8s.Create(ctx, appRoom)).To(Succeed())
	endRoom(t, appRoom, time.Now())
	endRoom(t, room, time.Now())
	g.Eventually(gone(appRoom), wait).Should(BeTrue())
	g.Consistently(gone(room), 2*time.Second).Should(BeFalse())

	// The app goes: its resync stops.
	g.Expect(k8s.Delete(ctx, getApp(t, app))).To(Succeed())
	g.Eventually(func() bool { return registry.Running(key) }, wait).Should(BeFalse())
	calls := f.fake.Calls(tencent.RESTGetRoomList)
	g.Consistently(func() int { return f.fake.Calls(tencent.RESTGetRoomList) }, 3*time.Second).Should(Equal(calls))
}

func TestDeclaredRoomMetadataPushedChangedDeleted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	roomID := "with-metadata-" + ns
	room := declaredRoom(ns, "with-metadata", roomID, "")
	room.Spec.Metadata = map[string]string{"theme": "dark", "banner": "welcome"}
	g.Expect(k8s.Create(ctx, room)).To(Succeed())
	g.Eventually(syncedReason(room), wait).Should(Equal("True/Created"))
	g.Expect(fakeTencent.RoomMetadata(roomID)).To(Equal(room.Spec.Metadata))
	g.Expect(getRoom(t, room).Status.Tencent.MetadataKeys).To(Equal([]string{"banner", "theme"}))

	// A key the room's owner set from a client is not the operator's to delete.
	md := fakeTencent.RoomMetadata(roomID)
	md["seat-layout"] = "grid"
	fakeTencent.SetRoomMetadataDirectly(roomID, md)

	cur := getRoom(t, room)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec.Metadata = map[string]string{"theme": "light"}
	g.Expect(k8s.Patch(ctx, cur, patch)).To(Succeed())
	g.Eventually(func() map[string]string { return fakeTencent.RoomMetadata(roomID) }, wait).Should(Equal(map[string]string{"theme": "light", "seat-layout": "grid"}))
	g.Eventually(func() []string { return getRoom(t, room).Status.Tencent.MetadataKeys }, wait).Should(Equal([]string{"theme"}))

	cur = getRoom(t, room)
	patch = client.MergeFrom(cur.DeepCopy())
	cur.Spec.Metadata = nil
	g.Expect(k8s.Patch(ctx, cur, patch)).To(Succeed())
	g.Eventually(func() map[string]string { return fakeTencent.RoomMetadata(roomID) }, wait).Should(Equal(map[string]string{"seat-layout": "grid"}))
	g.Eventually(func() []string { return getRoom(t, room).Status.Tencent.MetadataKeys }, wait).Should(BeEmpty())
	g.Eventually(syncedReason(room), wait).Should(Equal("True/Updated"))
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func TestLiveAppValidation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newAppFixture(t)
	for name, tt := range map[string]struct {
		edit    func(*livev1.LiveApp)
		invalid string
	}{
		"callback-only":            {edit: func(a *livev1.LiveApp) { a.Spec.API = livev1.LiveAppAPI{}; a.Spec.Callback = livev1.LiveAppCallback{} }},
		"managed":                  {},
		"managed-without-url":      {edit: func(a *livev1.LiveApp) { a.Spec.Callback.URL = "" }, invalid: "callback.manage needs callback.url"},
		"managed-without-key":      {edit: func(a *livev1.LiveApp) { a.Spec.API.SecretKeyRef = nil }, invalid: "callback.manage needs api.secretKeyRef"},
		"managed-with-own-tokens":  {edit: func(a *livev1.LiveApp) { a.Spec.Callback.TokensSecretRef = &livev1.SecretKeyRef{Name: "t", Key: "k"} }, invalid: "tokensSecretRef is for tokens the operator does not manage"},
		"negative-skew":            {edit: func(a *livev1.LiveApp) { a.Spec.Callback.MaxSkew = duration(-time.Second) }, invalid: "maxSkew must be more than 0s and at most 1h"},
		"zero-skew":                {edit: func(a *livev1.LiveApp) { a.Spec.Callback.MaxSkew = duration(0) }, invalid: "maxSkew must be more than 0s"},
		"day-long-skew":            {edit: func(a *livev1.LiveApp) { a.Spec.Callback.MaxSkew = duration(24 * time.Hour) }, invalid: "at most 1h"},
		"hour-skew":                {edit: func(a *livev1.LiveApp) { a.Spec.Callback.MaxSkew = duration(time.Hour) }},
		"negative-rotation":        {edit: func(a *livev1.LiveApp) { a.Spec.Callback.TokenRotationPeriod = duration(-time.Hour) }, invalid: "tokenRotationPeriod must not be negative"},
		"never-rotate":             {edit: func(a *livev1.LiveApp) { a.Spec.Callback.TokenRotationPeriod = duration(0) }},
		"negative-ttl":             {edit: func(a *livev1.LiveApp) { a.Spec.Rooms.EndedRoomTTL = duration(-time.Hour) }, invalid: "endedRoomTTL must not be negative"},
		"keep-ended-rooms":         {edit: func(a *livev1.LiveApp) { a.Spec.Rooms.EndedRoomTTL = duration(0) }},
		"resync-every-millisecond": {edit: func(a *livev1.LiveApp) { a.Spec.Rooms.ResyncInterval = duration(time.Millisecond) }, invalid: "resyncInterval must be at least 1s"},
		"zero-forward-timeout": {edit: func(a *livev1.LiveApp) {
			a.Spec.Forward = &livev1.LiveAppForward{URL: "https://backend.example/cb", Timeout: duration(0)}
		}, invalid: "forward.timeout must be more than 0s"},
	} {
		app := f.managedApp(name, tt.edit)
		err := k8s.Create(ctx, app, client.DryRunAll)
		if tt.invalid == "" {
			g.Expect(err).NotTo(HaveOccurred(), name)
		} else {
			g.Expect(err).To(MatchError(ContainSubstring(tt.invalid)), name)
		}
	}
	app := f.create(f.managedApp("immutable", nil))
	patch := client.MergeFrom(app.DeepCopy())
	app.Spec.SDKAppID++
	g.Expect(k8s.Patch(ctx, app, patch)).To(MatchError(ContainSubstring("sdkAppId is immutable")))
}
