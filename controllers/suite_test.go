package controllers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/roomstore"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

// testTTL is the ended-room TTL of the suite's default app.
const testTTL = 3 * time.Second

// Tencent app of the suite's default app, which serves the namespaces newNamespace makes.
const (
	testAppID = 1400000000
	testAdmin = "administrator"
	testKey   = "secret-key"
)

// operatorNamespace holds the projection Secrets and the replicas' Leases.
const operatorNamespace = "liveroom-system"

var (
	fakeTencent *faketencent.Server
	k8s         client.Client // direct, uncached
	mgrClient   client.Client // the manager's cached client
	registry    *apps.Registry
	testScheme  = testenv.Scheme
	nsCounter   atomic.Int32
)

// suiteApps serves the namespaces of newNamespace with a default app on fakeTencent, as
// if a LiveApp served each, and every other namespace through the registry the suite's
// LiveApp reconciler keeps.
type suiteApps struct {
	*apps.Registry
	fallback apps.App
}

func (s suiteApps) AppFor(namespace string) (apps.App, bool) {
	if app, ok := s.Registry.AppFor(namespace); ok {
		return app, true
	}
	if strings.HasPrefix(namespace, "ctrl-") {
		return s.fallback, true
	}
	return apps.App{}, false
}

// staticApps serves every namespace with one app.
type staticApps struct{ app apps.App }

func (s staticApps) AppFor(string) (apps.App, bool)   { return s.app, true }
func (staticApps) Changes() <-chan event.GenericEvent { return make(chan event.GenericEvent) }

// noCachedSecrets fails every read of Secrets through the cached client: the controller
// may neither list nor watch Secrets, so it reads them with its API reader only.
type noCachedSecrets struct{ client.Client }

func (c noCachedSecrets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		return fmt.Errorf("Secret %s read through the cache", key)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c noCachedSecrets) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*corev1.SecretList); ok {
		return fmt.Errorf("Secrets listed through the cache")
	}
	return c.Client.List(ctx, list, opts...)
}

// fastClient builds REST clients that retry at once and are not rate limited.
func fastClient(cfg tencent.Config) (*tencent.Client, error) {
	cfg.BaseBackoff, cfg.ListRate, cfg.DefaultRate = 10*time.Millisecond, -1, -1
	return tencent.NewClient(cfg)
}

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	suite, err := testenv.StartSuite()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer suite.Stop()
	k8s = suite.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		panic(err)
	}
	mgr, err := suite.NewManager(caches.WithReplicaLeases(caches.Controller(), operatorNamespace))
	if err != nil {
		panic(err)
	}
	mgrClient = mgr.GetClient()
	if err := roomstore.IndexRoomID(ctx, mgr.GetFieldIndexer()); err != nil {
		panic(err)
	}
	fakeTencent = faketencent.New(testAppID, testAdmin, testKey)
	defer fakeTencent.Close()
	tc, err := fastClient(tencent.Config{BaseURL: fakeTencent.URL(), SDKAppID: testAppID, AdminUser: testAdmin,
		SecretKey: func() (string, error) { return testKey, nil }})
	if err != nil {
		panic(err)
	}
	registry = &apps.Registry{
		NewStore: func(namespace string, sdkAppID int64) *roomstore.Store {
			return roomstore.New(roomstore.Config{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), CacheTrimsRooms: true,
				Namespace: namespace, SDKAppID: sdkAppID, FieldOwner: "liveroom-callback"})
		},
		Reader: mgr.GetCache(), SecretReader: mgr.GetAPIReader(), NewClient: fastClient, Log: ctrl.Log.WithName("registry"),
	}
	if err := (&LiveAppReconciler{
		Client: noCachedSecrets{mgr.GetClient()}, APIReader: mgr.GetAPIReader(), Scheme: testScheme, Recorder: mgr.GetEventRecorder(FieldOwner),
		Namespace: operatorNamespace, Registry: registry,
		CheckInterval: appCheckInterval, SecretPoll: time.Second, ReplicaPoll: 200 * time.Millisecond, TokenGrace: 500 * time.Millisecond,
	}).SetupWithManager(mgr); err != nil {
		panic(err)
	}
	lookup := suiteApps{Registry: registry, fallback: apps.App{SDKAppID: testAppID, EndedRoomTTL: testTTL, Tencent: tc}}
	if err := (&LiveRoomReconciler{Client: mgr.GetClient(), Scheme: testScheme, Recorder: mgr.GetEventRecorder(FieldOwner), Apps: lookup}).SetupWithManager(mgr); err != nil {
		panic(err)
	}
	if err := (&RecordingPolicyReconciler{Client: mgr.GetClient(), Scheme: testScheme}).SetupWithManager(mgr); err != nil {
		panic(err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			panic(err)
		}
	}()
	return m.Run()
}

// newNamespace gives each test its own namespace, so policies of one never select
// rooms of another.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("ctrl-%d", nsCounter.Add(1))
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// liveRoom creates a room as the callback server would and marks it live.
func liveRoom(t *testing.T, ns, name string, origin string, labels map[string]string) *livev1.LiveRoom {
	t.Helper()
	room := &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       livev1.LiveRoomSpec{RoomID: "id-" + name, SDKAppID: testAppID, Owner: "user3", RoomName: "Room " + name},
	}
	if origin != "" {
		room.Annotations = map[string]string{livev1.OriginAnnotation: origin}
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, room); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(room.DeepCopy())
	room.Status.Phase = livev1.RoomPhaseLive
	room.Status.CreateTime = &metav1.Time{Time: time.Now().Truncate(time.Second)}
	if err := k8s.Status().Patch(ctx, room, patch); err != nil {
		t.Fatal(err)
	}
	return room
}

// endRoom marks a room ended at the given time, as a destroy callback would.
func endRoom(t *testing.T, room *livev1.LiveRoom, at time.Time) {
	t.Helper()
	ctx := context.Background()
	var cur livev1.LiveRoom
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(room), &cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Status.Phase = livev1.RoomPhaseEnded
	cur.Status.EndTime = &metav1.Time{Time: at.Truncate(time.Second)}
	cur.Status.EndReason = livev1.EndReasonDestroyByUser
	if err := k8s.Status().Patch(ctx, &cur, patch); err != nil {
		t.Fatal(err)
	}
}

func policy(ns, name string, selector map[string]string) *livev1.RecordingPolicy {
	p := &livev1.RecordingPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: livev1.RecordingPolicySpec{
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					InitContainers: []corev1.Container{{Name: "prepare", Image: "busybox:1.36",
						Env: []corev1.EnvVar{{Name: EnvRoomID, Value: "overridden"}}}},
					Containers: []corev1.Container{{Name: "record", Image: "busybox:1.36", Command: []string{"sleep", "3600"},
						Env: []corev1.EnvVar{{Name: "KEEP", Value: "me"}}}},
				}},
			}},
		},
	}
	if selector != nil {
		p.Spec.RoomSelector = &metav1.LabelSelector{MatchLabels: selector}
	}
	return p
}

func getJob(ns, name string) (*batchv1.Job, error) {
	var job batchv1.Job
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &job)
	return &job, err
}

func getRoom(t *testing.T, room *livev1.LiveRoom) *livev1.LiveRoom {
	t.Helper()
	var cur livev1.LiveRoom
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(room), &cur); err != nil {
		t.Fatal(err)
	}
	return &cur
}
