// Package roomstore persists room events as LiveRooms: it finds a room by RoomId, applies
// a roomstate.Mutation and writes the result with server-side apply under its own field
// manager, with the resourceVersion it read as a precondition so concurrent writers
// (other replicas, the resync) never lose each other's events.
package roomstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
	"github.com/liveroom-io/liveroom-operator/internal/roomstate"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// RoomIDField indexes LiveRooms by spec.roomId in the cache; the CRD also declares it a
// selectable field, so the same selector works against the API server.
const RoomIDField = "spec.roomId"

// maxAttempts bounds the read-modify-write loop when other writers keep winning.
const maxAttempts = 8

// IndexRoomID registers the spec.roomId cache index the store looks rooms up by.
func IndexRoomID(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &livev1.LiveRoom{}, RoomIDField, func(o client.Object) []string {
		return []string{o.(*livev1.LiveRoom).Spec.RoomID}
	})
}

// Config configures a Store.
type Config struct {
	// Client reads from the informer cache (with the IndexRoomID index) and writes to the
	// API server.
	Client client.Client
	// APIReader reads from the API server, after a write found the cache stale.
	APIReader client.Reader
	// CacheTrimsRooms says the cache holds LiveRooms trimmed of fields the store writes
	// (the controller's cache does, to save memory): a room about to change is then read
	// whole from the API server first. The trimming must only ever make a mutation report
	// a change it would not make, never hide one (caches.TrimRoomForController does).
	CacheTrimsRooms bool
	Namespace       string
	SDKAppID        int64
	// FieldOwner is the server-side apply field manager of every write.
	FieldOwner string
	// Recorder, if set, gets an Event when a room is created, ended or revived.
	Recorder events.EventRecorder
	// Gate, if set, bounds the writes in flight: a mutation holding its room's lock
	// enters it before reading and writing, so callbacks queued behind one busy room hold
	// no slot while they wait.
	Gate Gate
}

// Gate admits writes; *lanes.Gate is the real one.
type Gate interface {
	Enter(ctx context.Context) (release func(), err error)
}

// Store writes room events to LiveRooms in one namespace. It owns finding rooms by
// RoomId and creating them: the callback server and the resync both go through it.
type Store struct {
	Config
	locks *keyedMutex
}

// New builds a Store.
func New(cfg Config) *Store { return &Store{Config: cfg, locks: &keyedMutex{}} }

// ForApp is the same store for the rooms of another app: its namespace and SDKAppID,
// the same client, field owner and per-room locks.
func (s *Store) ForApp(namespace string, sdkAppID int64) *Store {
	cfg := s.Config
	cfg.Namespace, cfg.SDKAppID = namespace, sdkAppID
	return &Store{Config: cfg, locks: s.locks}
}

// Through is the same store writing through c, with gate (nil: none): another lane's
// client and budget, the same rooms and per-room locks, so one process never races
// itself on a room.
func (s *Store) Through(c client.Client, gate Gate) *Store {
	cfg := s.Config
	cfg.Client, cfg.Gate = c, gate
	return &Store{Config: cfg, locks: s.locks}
}

// Result is what a mutation did and the room as stored afterwards.
type Result struct {
	Outcome roomstate.Outcome
	Room    *livev1.LiveRoom
}

// Mutate applies m to the room with the given RoomId, creating the room (with the given
// origin annotation) when no LiveRoom has that RoomId, and returns once the API server
// has stored the result. Writes of one room are serialised in this process; writers in
// other processes are detected by the resourceVersion precondition and the mutation is
// applied again to what they stored.
func (s *Store) Mutate(ctx context.Context, roomID, origin string, m roomstate.Mutation) (Result, error) {
	release, err := s.enter(ctx, roomID)
	if err != nil {
		return Result{}, err
	}
	defer release()

	cur, err := s.find(ctx, s.Client, roomID)
	if err != nil {
		return Result{}, err
	}
	// fresh says cur was read from the API server rather than the cache.
	fresh := false
	if s.CacheTrimsRooms && cur != nil {
		// The trimmed room is enough to see that nothing changes, not to write it.
		if m(cur.DeepCopy()) == roomstate.Unchanged {
			return Result{Outcome: roomstate.Unchanged, Room: cur}, nil
		}
		whole := &livev1.LiveRoom{}
		if err := s.APIReader.Get(ctx, client.ObjectKeyFromObject(cur), whole); err != nil {
			return Result{}, fmt.Errorf("reading LiveRoom %s: %w", cur.Name, err)
		}
		cur, fresh = whole, true
	}
	return s.mutateFrom(ctx, roomID, origin, m, cur, fresh)
}

// enter waits for the room's earlier writes in this process and for a write slot.
func (s *Store) enter(ctx context.Context, roomID string) (release func(), err error) {
	unlock, err := s.locks.lock(ctx, s.Namespace+"/"+roomID)
	if err != nil {
		return nil, fmt.Errorf("waiting for the room's earlier writes: %w", err)
	}
	if s.Gate == nil {
		return unlock, nil
	}
	leave, err := s.Gate.Enter(ctx)
	if err != nil {
		unlock()
		return nil, err
	}
	return func() { leave(); unlock() }, nil
}

// mutateFrom applies m to cur (nil: a new room) and writes the result, applying it again to
// what the API server holds each time another writer got there first.
func (s *Store) mutateFrom(ctx context.Context, roomID, origin string, m roomstate.Mutation, cur *livev1.LiveRoom, fresh bool) (Result, error) {
	taken := map[string]bool{}
	for attempt := 1; ; attempt++ {
		room, err := s.draft(ctx, cur, roomID, origin, taken)
		if err != nil {
			return Result{}, err
		}
		outcome := m(room)
		if outcome == roomstate.Unchanged {
			return Result{Outcome: outcome, Room: room}, nil
		}
		// Checked before anything is written, so that the API server cannot refuse the
		// status after it stored the object. A room read from the cache may be behind
		// (a change that made room was just stored): only the stored room can say no.
		err = validate(room)
		if err == nil {
			var stored *livev1.LiveRoom
			if stored, err = s.write(ctx, cur, room); err == nil {
				s.record(stored, outcome)
				return Result{Outcome: outcome, Room: stored}, nil
			}
			if !raced(err, taken) {
				return Result{}, err
			}
		} else if fresh || attempt == maxAttempts {
			return Result{}, err
		}
		if attempt == maxAttempts {
			return Result{}, fmt.Errorf("room %q kept changing under %d attempts: %w", roomID, attempt, err)
		}
		if cur, err = s.find(ctx, s.APIReader, roomID); err != nil {
			return Result{}, err
		}
		fresh = true
	}
}

// draft is the room to apply a mutation to: a copy of cur, or a new room.
func (s *Store) draft(ctx context.Context, cur *livev1.LiveRoom, roomID, origin string, taken map[string]bool) (*livev1.LiveRoom, error) {
	if cur != nil {
		return cur.DeepCopy(), nil
	}
	return s.newRoom(ctx, roomID, origin, taken)
}

// raced reports whether a write failed because another writer got there first, so that
// the mutation applies again to what it stored; a name another room took is remembered.
func raced(err error, taken map[string]bool) bool {
	var clash *nameClashError
	if errors.As(err, &clash) {
		taken[clash.name] = true
		return true
	}
	return apierrors.IsConflict(err) || errors.Is(err, errRaced)
}

// Find returns the LiveRoom whose spec.roomId is roomID from the cache, or nil. Should
// several objects have it (a person declared a second one), the oldest is the room.
func (s *Store) Find(ctx context.Context, roomID string) (*livev1.LiveRoom, error) {
	return s.find(ctx, s.Client, roomID)
}

// find returns the LiveRoom whose spec.roomId is roomID, or nil.
func (s *Store) find(ctx context.Context, r client.Reader, roomID string) (*livev1.LiveRoom, error) {
	var list livev1.LiveRoomList
	if err := r.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingFields{RoomIDField: roomID}); err != nil {
		return nil, fmt.Errorf("listing LiveRooms with roomId %q: %w", roomID, err)
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	// RoomIds are unique per namespace by construction; should a person have declared a
	// second object for one, the oldest wins, deterministically.
	oldest := &list.Items[0]
	for i := range list.Items[1:] {
		if list.Items[i+1].CreationTimestamp.Before(&oldest.CreationTimestamp) {
			oldest = &list.Items[i+1]
		}
	}
	return oldest, nil
}

// newRoom returns an unsaved room for roomID under the first name that no other RoomId
// holds, as far as the cache and earlier attempts tell.
func (s *Store) newRoom(ctx context.Context, roomID, origin string, taken map[string]bool) (*livev1.LiveRoom, error) {
	for _, name := range naming.RoomObjectNames(roomID) {
		if taken[name] {
			continue
		}
		var other livev1.LiveRoom
		err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, &other)
		if err == nil && other.Spec.RoomID != roomID {
			taken[name] = true
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		return &livev1.LiveRoom{
			TypeMeta: metav1.TypeMeta{APIVersion: livev1.GroupVersion.String(), Kind: "LiveRoom"},
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: s.Namespace,
				Annotations: map[string]string{livev1.OriginAnnotation: origin},
			},
			Spec: livev1.LiveRoomSpec{RoomID: roomID, SDKAppID: s.SDKAppID},
		}, nil
	}
	return nil, fmt.Errorf("%w: every name for RoomId %q is held by another RoomId's LiveRoom", ErrUnstorable, roomID)
}

// nameClashError says an object of another RoomId holds the name a new room was given.
type nameClashError struct{ name string }

func (e *nameClashError) Error() string {
	return fmt.Sprintf("LiveRoom %s belongs to another RoomId", e.name)
}

// errRaced says a room appeared between the lookup and the write; the mutation must be
// applied again to what is stored.
var errRaced = errors.New("room was created concurrently")

// write stores the callback-owned parts of room that differ from cur (nil: a new room).
func (s *Store) write(ctx context.Context, cur, room *livev1.LiveRoom) (*livev1.LiveRoom, error) {
	stored := cur
	if main := mainApply(room); cur == nil || (!room.Declared() && !reflect.DeepEqual(mainApply(cur), main)) {
		if cur != nil {
			main.SetResourceVersion(cur.ResourceVersion)
		}
		out, err := s.apply(ctx, main, false)
		if err != nil {
			if cur == nil && apierrors.IsInvalid(err) && strings.Contains(err.Error(), "roomId is immutable") {
				return nil, &nameClashError{name: room.Name}
			}
			return nil, unstorable(err)
		}
		if cur == nil && (!s.onlyOwner(out) || out.Status.Phase != "" || out.Status.LastEventTime != nil) {
			// Another writer created the room first (a person, or another replica or the
			// resync, which already stored events): start over from its state.
			return nil, errRaced
		}
		stored = out
	}
	if status := statusApply(room); !reflect.DeepEqual(statusApply(cur), status) {
		status.SetResourceVersion(stored.ResourceVersion)
		out, err := s.apply(ctx, status, true)
		if err != nil {
			return nil, unstorable(err)
		}
		stored = out
	}
	return stored, nil
}

// onlyOwner reports whether every field of room was written by this store, that is
// whether the apply that returned it created it.
func (s *Store) onlyOwner(room *livev1.LiveRoom) bool {
	for _, mf := range room.ManagedFields {
		if mf.Manager != s.FieldOwner {
			return false
		}
	}
	return true
}

// apply sends a server-side apply. Fields another manager owns with a different value
// stay theirs: the conflicting fields are dropped from the request and it is sent again.
func (s *Store) apply(ctx context.Context, u *unstructured.Unstructured, status bool) (*livev1.LiveRoom, error) {
	for range 3 {
		var err error
		ac := client.ApplyConfigurationFromUnstructured(u)
		if status {
			err = s.Client.Status().Apply(ctx, ac, client.FieldOwner(s.FieldOwner))
		} else {
			err = s.Client.Apply(ctx, ac, client.FieldOwner(s.FieldOwner))
		}
		if err == nil {
			var out livev1.LiveRoom
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &out); err != nil {
				return nil, err
			}
			return &out, nil
		}
		fields := conflictingFields(err)
		if len(fields) == 0 {
			return nil, err
		}
		others, rerr := s.othersFields(ctx, client.ObjectKeyFromObject(u))
		if rerr != nil {
			return nil, fmt.Errorf("resolving a conflict with another field manager: %w", rerr)
		}
		for _, f := range fields {
			if p, ok := others[f]; !ok || !withoutField(u.Object, p) {
				// Ownership moved since the conflict; the next attempt sees the new owners.
				logf.FromContext(ctx).V(1).Info("Conflicting field not found in the managed fields", "field", f, "liveRoom", client.ObjectKeyFromObject(u))
			}
		}
		logf.FromContext(ctx).V(1).Info("Left fields owned by another manager", "fields", fields, "liveRoom", client.ObjectKeyFromObject(u))
	}
	return nil, fmt.Errorf("LiveRoom %s: fields owned by other managers kept conflicting", u.GetName())
}

func identity(room *livev1.LiveRoom) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(livev1.GroupVersion.String())
	u.SetKind("LiveRoom")
	u.SetNamespace(room.Namespace)
	u.SetName(room.Name)
	return u
}

// mainApply is what the store owns of a room's object: the origin annotation, the
// selection labels and the spec fields Tencent reports. deletionPolicy and recording
// belong to people.
func mainApply(room *livev1.LiveRoom) *unstructured.Unstructured {
	u := identity(room)
	u.SetAnnotations(map[string]string{livev1.OriginAnnotation: room.Origin()})
	u.SetLabels(roomstate.Labels(&room.Spec))
	spec := room.Spec.DeepCopy()
	spec.DeletionPolicy, spec.Recording = "", livev1.RecordingSpec{}
	u.Object["spec"] = mustUnstructured(spec)
	return u
}

// statusApply is what the store owns of a room's status (livev1.StatusOwnerRoomEvents).
func statusApply(room *livev1.LiveRoom) *unstructured.Unstructured {
	if room == nil {
		return nil
	}
	u := identity(room)
	st := room.Status.OwnedBy(livev1.StatusOwnerRoomEvents)
	u.Object["status"] = mustUnstructured(&st)
	return u
}

func mustUnstructured(v any) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(v)
	if err != nil {
		panic(fmt.Sprintf("converting %T: %v", v, err))
	}
	return m
}

// record emits the Event that tells people a callback or the resync changed a room's life.
func (s *Store) record(room *livev1.LiveRoom, outcome roomstate.Outcome) {
	if s.Recorder == nil {
		return
	}
	switch outcome {
	case roomstate.Created, roomstate.Revived:
		s.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "RoomCreated", "Create",
			"Room %s is live (from %s)", room.Spec.RoomID, originOrDeclared(room))
	case roomstate.Ended:
		s.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "RoomEnded", "End",
			"Room %s ended: %s", room.Spec.RoomID, room.Status.EndReason)
	}
}

func originOrDeclared(room *livev1.LiveRoom) string {
	if o := room.Origin(); o != "" {
		return o
	}
	return "declared room"
}

// ErrUnstorable marks a change that the API server refuses for good (the LiveRoom
// schema forbids it, or every name for the room is taken): retrying the callback that
// asked for it cannot help, so it is answered as bad input, not as "retry".
var ErrUnstorable = errors.New("the change cannot be stored")

// unstorable marks the API server's refusals of the object itself as ErrUnstorable.
func unstorable(err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err) {
		return fmt.Errorf("%w: %w", ErrUnstorable, err)
	}
	return err
}

// Limits of the LiveRoom schema that a sequence of valid callbacks can exceed (each
// callback alone is checked when it is decoded).
const (
	MaxAdmins = tencent.MaxAdmins
	MaxSeats  = tencent.MaxSeats
)

// validate checks a mutated room against the schema limits that events accumulate into.
func validate(room *livev1.LiveRoom) error {
	if n := len(room.Status.Admins); n > MaxAdmins {
		return fmt.Errorf("%w: room %q would have %d admins, more than %d", ErrUnstorable, room.Spec.RoomID, n, MaxAdmins)
	}
	if n := len(room.Status.Seats); n > MaxSeats {
		return fmt.Errorf("%w: room %q would have %d seats, more than %d", ErrUnstorable, room.Spec.RoomID, n, MaxSeats)
	}
	if n := len(room.Status.Metadata); n > tencent.MaxMetadataKeys {
		return fmt.Errorf("%w: room %q would have %d metadata keys, more than %d", ErrUnstorable, room.Spec.RoomID, n, tencent.MaxMetadataKeys)
	}
	if n := tencent.MetadataValueBytes(room.Status.Metadata); n > tencent.MaxMetadataTotalBytes {
		return fmt.Errorf("%w: room %q would have %d bytes of metadata values, more than %d", ErrUnstorable, room.Spec.RoomID, n, tencent.MaxMetadataTotalBytes)
	}
	return nil
}
