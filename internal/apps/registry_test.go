package apps

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
)

const (
	regAppID = 1400000009
	regAdmin = "administrator"
	regKey   = "registry-secret-key"
)

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(livev1.AddToScheme(s))
	return s
}

// registryFixture is a registry on a fake API server holding the app's key Secret, and a
// fake Tencent app.
type registryFixture struct {
	reg        *Registry
	fake       *faketencent.Server
	secretGets atomic.Int32
	now        atomic.Pointer[time.Time]
}

func newRegistryFixture(t *testing.T) *registryFixture {
	t.Helper()
	f := &registryFixture{fake: faketencent.New(regAppID, regAdmin, regKey)}
	f.fake.SetListRateLimit(0)
	t.Cleanup(f.fake.Close)
	start := time.Unix(1700000000, 0)
	f.now.Store(&start)
	c := fake.NewClientBuilder().WithScheme(testScheme()).
		WithObjects(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "tencent"}, Data: map[string][]byte{"secretKey": []byte(regKey + "\n")}}).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok {
				f.secretGets.Add(1)
			}
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	f.reg = &Registry{
		NewStore: func(namespace string, sdkAppID int64) *roomstore.Store {
			return roomstore.New(roomstore.Config{Client: c, APIReader: c, Namespace: namespace, SDKAppID: sdkAppID, FieldOwner: "test"})
		},
		Reader: c, SecretReader: c, Log: logr.Discard(),
		NewClient: func(cfg tencent.Config) (*tencent.Client, error) {
			cfg.BaseBackoff, cfg.ListRate, cfg.DefaultRate = time.Millisecond, -1, -1
			return tencent.NewClient(cfg)
		},
		Now: func() time.Time { return *f.now.Load() },
	}
	return f
}

func (f *registryFixture) config(edit func(*Config)) Config {
	cfg := Config{
		Key: client.ObjectKey{Namespace: "shop", Name: "shop"}, UID: "uid-1", SDKAppID: regAppID,
		APIHost: f.fake.URL(), AdminUser: regAdmin, SecretKeyRef: &livev1.SecretKeyRef{Name: "tencent", Key: "secretKey"},
		EndedRoomTTL: time.Hour, ResyncInterval: 50 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	return cfg
}

func TestConfigOfFillsTheSpecDefaults(t *testing.T) {
	app := &livev1.LiveApp{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "u"}, Spec: livev1.LiveAppSpec{SDKAppID: 7}}
	cfg := ConfigOf(app)
	if cfg.APIHost != DefaultAPIHost || cfg.AdminUser != DefaultAdminUser || cfg.EndedRoomTTL != DefaultEndedRoomTTL || cfg.ResyncInterval != DefaultResyncInterval || cfg.SecretKeyRef != nil {
		t.Fatalf("%+v", cfg)
	}
	app.Spec.Rooms.EndedRoomTTL = &metav1.Duration{Duration: 0}
	if ConfigOf(app).EndedRoomTTL != 0 {
		t.Fatal("an explicit 0s TTL (keep ended rooms) was replaced by the default")
	}
}

func TestRegistryRunsOneResyncPerAppWhileStarted(t *testing.T) {
	f := newRegistryFixture(t)
	changes := f.reg.Changes()
	cfg := f.config(nil)
	if err := f.reg.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if f.reg.Running(cfg.Key) {
		t.Fatal("a resync runs before the registry started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = f.reg.Start(ctx) }()
	g := NewWithT(t)
	g.Eventually(func() int { return f.fake.Calls(tencent.RESTGetRoomList) }, 10*time.Second).Should(BeNumerically(">=", 3))
	if !f.reg.Running(cfg.Key) {
		t.Fatal("not running")
	}
	app, ok := f.reg.AppFor("shop")
	if !ok || app.Tencent == nil || app.EndedRoomTTL != time.Hour || app.SDKAppID != regAppID {
		t.Fatalf("AppFor: %+v %v", app, ok)
	}
	if _, ok := f.reg.AppFor("elsewhere"); ok {
		t.Fatal("an app for a namespace it does not serve")
	}
	if n := len(changes); n != 1 {
		t.Fatalf("%d change events for one new app", n)
	}
	<-changes

	// The same configuration again changes nothing; a new TTL keeps client and resync.
	if err := f.reg.Set(cfg); err != nil {
		t.Fatal(err)
	}
	ttl := f.config(func(c *Config) { c.EndedRoomTTL = time.Minute })
	if err := f.reg.Set(ttl); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.reg.AppFor("shop"); again.Tencent != app.Tencent || again.EndedRoomTTL != time.Minute {
		t.Fatalf("after a TTL change: %+v", again)
	}
	if n := len(changes); n != 1 {
		t.Fatalf("%d change events, want 1 for the TTL", n)
	}
	<-changes

	// Without a secret key: no client, no resync.
	if err := f.reg.Set(f.config(func(c *Config) { c.SecretKeyRef = nil })); err != nil {
		t.Fatal(err)
	}
	if f.reg.Running(cfg.Key) {
		t.Fatal("a resync runs without a secret key")
	}
	if app, _ := f.reg.AppFor("shop"); app.Tencent != nil {
		t.Fatal("a client without a secret key")
	}
	calls := f.fake.Calls(tencent.RESTGetRoomList)
	// Four intervals: a running resync would list.
	g.Consistently(func() int { return f.fake.Calls(tencent.RESTGetRoomList) }, 200*time.Millisecond).Should(Equal(calls), "the resync stopped")

	// Back with a key, then removed: stopped again.
	if err := f.reg.Set(cfg); err != nil {
		t.Fatal(err)
	}
	g.Eventually(func() int { return f.fake.Calls(tencent.RESTGetRoomList) }, 10*time.Second).Should(BeNumerically(">", calls))
	f.reg.Remove(cfg.Key)
	if f.reg.Running(cfg.Key) {
		t.Fatal("running after Remove")
	}
	if _, ok := f.reg.AppFor("shop"); ok {
		t.Fatal("found after Remove")
	}
	cancel()
	<-stopped
}

func TestRegistryStopsLoopsWithItsContext(t *testing.T) {
	f := newRegistryFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = f.reg.Start(ctx) }()
	cfg := f.config(nil)
	if err := f.reg.Set(cfg); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() int { return f.fake.Calls(tencent.RESTGetRoomList) }, 10*time.Second).Should(BeNumerically(">=", 1))
	cancel()
	<-stopped
	if f.reg.Running(cfg.Key) {
		t.Fatal("a loop survived the registry")
	}
}

func TestSecretKeyReadBrieflyCached(t *testing.T) {
	f := newRegistryFixture(t)
	c, err := f.reg.ClientFor(f.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := c.GetCallback(ctx); !tencent.IsCode(err, tencent.CodeCallbackConfigAbsent) {
			t.Fatalf("a call with the key from the Secret: %v", err)
		}
	}
	if n := f.secretGets.Load(); n != 1 {
		t.Fatalf("%d GETs of the Secret for three calls within the TTL", n)
	}
	later := f.now.Load().Add(DefaultSecretKeyTTL + time.Second)
	f.now.Store(&later)
	if _, err := c.GetCallback(ctx); !tencent.IsCode(err, tencent.CodeCallbackConfigAbsent) {
		t.Fatal(err)
	}
	if n := f.secretGets.Load(); n != 2 {
		t.Fatalf("%d GETs, want the key read again after its TTL", n)
	}
}

func TestSecretValueErrorsNameTheSecretNeverItsValue(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme()).
		WithObjects(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Data: map[string][]byte{"blank": []byte("  \n"), "k": []byte("value-42")}}).Build()
	ctx := context.Background()
	if v, err := SecretValue(ctx, c, "ns", livev1.SecretKeyRef{Name: "s", Key: "k"}); err != nil || v != "value-42" {
		t.Fatalf("%q %v", v, err)
	}
	var missing *MissingSecretError
	_, err := SecretValue(ctx, c, "ns", livev1.SecretKeyRef{Name: "absent", Key: "k"})
	if !errors.As(err, &missing) || !missing.NoSecret || !strings.Contains(err.Error(), "ns/absent") {
		t.Fatalf("absent Secret: %v", err)
	}
	for _, key := range []string{"other", "blank"} {
		_, err := SecretValue(ctx, c, "ns", livev1.SecretKeyRef{Name: "s", Key: key})
		if !errors.As(err, &missing) || missing.NoSecret || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "value-42") {
			t.Fatalf("key %s: %v", key, err)
		}
	}
}

func TestTokenSecretNameFits(t *testing.T) {
	if got := TokenSecretName("shop"); got != "shop-callback-token" {
		t.Fatal(got)
	}
	long := strings.Repeat("a", 250)
	got := TokenSecretName(long)
	if len(got) > 253 || got == TokenSecretName(strings.Repeat("a", 249)+"b") {
		t.Fatalf("%d bytes: %s", len(got), got)
	}
}
