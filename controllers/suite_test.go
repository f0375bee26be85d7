package controllers

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
	"github.com/liveroom-io/liveroom-operator/internal/tencent/faketencent"
	"github.com/liveroom-io/liveroom-operator/internal/testenv"
)

// testTTL is the ended-room TTL of the suite's manager.
const testTTL = 3 * time.Second

var (
	fakeTencent *faketencent.Server
	k8s         client.Client // direct, uncached
	mgrClient   client.Client // the manager's cached client
	testScheme  = testenv.Scheme
	nsCounter   atomic.Int32
)

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
	mgr, err := suite.NewManager(caches.Controller())
	if err != nil {
		panic(err)
	}
	mgrClient = mgr.GetClient()
	fakeTencent = faketencent.New(1400000000, "administrator", "secret-key")
	defer fakeTencent.Close()
	tc, err := tencent.NewClient(tencent.Config{
		BaseURL: fakeTencent.URL(), SDKAppID: 1400000000, AdminUser: "administrator",
		SecretKey: func() (string, error) { return "secret-key", nil }, BaseBackoff: 10 * time.Millisecond, ListRate: -1, DefaultRate: -1,
	})
	if err != nil {
		panic(err)
	}
	if err := (&LiveRoomReconciler{Client: mgr.GetClient(), Scheme: testScheme, Recorder: mgr.GetEventRecorder(FieldOwner), EndedRoomTTL: testTTL, Tencent: tc}).SetupWithManager(mgr); err != nil {
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
		Spec:       livev1.LiveRoomSpec{RoomID: "id-" + name, SDKAppID: 1400000000, Owner: "user3", RoomName: "Room " + name},
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
