package roomstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// roomWithMetadata is a live room whose metadata has the given values.
func roomWithMetadata(values map[string]string) *livev1.LiveRoom {
	return &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "rooms", ResourceVersion: "7",
			Annotations: map[string]string{livev1.OriginAnnotation: livev1.OriginCallback}},
		Spec:   livev1.LiveRoomSpec{RoomID: "r", SDKAppID: 1400000000},
		Status: livev1.LiveRoomStatus{Phase: livev1.RoomPhaseLive, Metadata: values},
	}
}

func fakeReader(t *testing.T, room *livev1.LiveRoom, funcs interceptor.Funcs) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := livev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).WithObjects(room).WithStatusSubresource(room).
		WithIndex(&livev1.LiveRoom{}, RoomIDField, func(o client.Object) []string { return []string{o.(*livev1.LiveRoom).Spec.RoomID} }).
		Build(), funcs)
}

// A change the cached room cannot take, but the stored room can (the change that made
// room was stored a moment ago), is stored, not refused as unstorable.
func TestLimitJudgedOnTheStoredRoom(t *testing.T) {
	full := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		full[k] = strings.Repeat("v", tencent.MaxMetadataValueBytes)
	}
	stale := roomWithMetadata(full)
	shrunk := map[string]string{}
	for k, v := range full {
		shrunk[k] = v
	}
	shrunk["a"] = "small"
	stored := roomWithMetadata(shrunk)
	stored.ResourceVersion = "8"

	var written *livev1.LiveRoom
	cache := fakeReader(t, stale, interceptor.Funcs{
		SubResourceApply: func(_ context.Context, _ client.Client, _ string, ac runtime.ApplyConfiguration, _ ...client.SubResourceApplyOption) error {
			u := ac.(interface{ GetName() string })
			written = &livev1.LiveRoom{ObjectMeta: metav1.ObjectMeta{Name: u.GetName()}}
			return nil
		},
	})
	api := fakeReader(t, stored, interceptor.Funcs{})
	store := New(Config{Client: cache, APIReader: api, Namespace: "rooms", SDKAppID: 1400000000, FieldOwner: "test"})

	set := &tencent.Callback{Command: tencent.CommandSetMetadata, RoomID: "r", EventTime: 1,
		Metadata: []tencent.MetadataEntry{{Key: "i", Value: "x"}}}
	res, err := store.Mutate(context.Background(), "r", livev1.OriginCallback, roomstate.ForCallback(set, metav1.Now().Time))
	if err != nil {
		t.Fatalf("refused on the cached room: %v", err)
	}
	if written == nil || res.Room.Status.Metadata["a"] != "small" || res.Room.Status.Metadata["i"] != "x" {
		t.Fatalf("written %v, metadata %v", written, res.Room.Status.Metadata)
	}

	// What the stored room cannot take either is refused, nothing written.
	written = nil
	big := &tencent.Callback{Command: tencent.CommandSetMetadata, RoomID: "r", EventTime: 2,
		Metadata: []tencent.MetadataEntry{{Key: "j", Value: strings.Repeat("v", tencent.MaxMetadataValueBytes)}}}
	_, err = store.Mutate(context.Background(), "r", livev1.OriginCallback, roomstate.ForCallback(big, metav1.Now().Time))
	if !errors.Is(err, ErrUnstorable) || written != nil {
		t.Fatalf("got %v, written %v", err, written)
	}
}

// Should two objects claim one RoomId (a person declared a second), the oldest is the room,
// whatever order the cache lists them in: the callbacks and the resync find the same one.
func TestFindTakesTheOldestClaimant(t *testing.T) {
	older := roomWithMetadata(nil)
	older.Name, older.CreationTimestamp = "b-older", metav1.NewTime(metav1.Now().Add(-time.Hour))
	newer := roomWithMetadata(nil)
	newer.Name, newer.CreationTimestamp, newer.ResourceVersion = "a-newer", metav1.Now(), ""
	c := fakeReader(t, older, interceptor.Funcs{})
	if err := c.Create(context.Background(), newer); err != nil {
		t.Fatal(err)
	}
	var list livev1.LiveRoomList
	if err := c.List(context.Background(), &list); err != nil || len(list.Items) != 2 || list.Items[0].Name != newer.Name {
		t.Fatalf("the cache should list the newer room first: %v, %v", err, list.Items)
	}
	store := New(Config{Client: c, APIReader: c, Namespace: "rooms", SDKAppID: 1400000000, FieldOwner: "test"})
	got, err := store.Find(context.Background(), "r")
	if err != nil || got == nil || got.Name != older.Name {
		t.Fatalf("found %v, %v; want %s", got, err, older.Name)
	}
}
