package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// TencentRooms is the part of Tencent's REST API that declared rooms need;
// *tencent.Client is the real one.
type TencentRooms interface {
	CreateRoom(ctx context.Context, info tencent.RoomInfo) error
	UpdateRoomInfo(ctx context.Context, info tencent.RoomInfo) error
	GetRoomInfo(ctx context.Context, roomID string) (*tencent.RoomInfo, error)
	DestroyRoom(ctx context.Context, roomID string) (*tencent.Statistic, error)
	SetRoomMetadata(ctx context.Context, roomID string, metadata map[string]string) error
	DelRoomMetadata(ctx context.Context, roomID string, keys []string) error
	// AdminUser is the account the API is called as: a room created without an owner
	// is the admin's.
	AdminUser() string
}

// AppLookup finds the app serving a namespace; *apps.Registry is the real one.
type AppLookup interface {
	AppFor(namespace string) (apps.App, bool)
	// Changes sends an event with the LiveApp whenever what its rooms depend on changes.
	Changes() <-chan event.GenericEvent
}

// appOf is the room's app: the one serving its namespace, if it is the room's SDKAppID.
func (r *LiveRoomReconciler) appOf(room *livev1.LiveRoom) (apps.App, bool) {
	if r.Apps == nil {
		return apps.App{}, false
	}
	app, ok := r.Apps.AppFor(room.Namespace)
	if !ok || app.SDKAppID != room.Spec.SDKAppID {
		return apps.App{}, false
	}
	return app, true
}

// endedRoomTTL is how long the room is kept once ended: its app's TTL, or the default
// for a room no app serves.
func (r *LiveRoomReconciler) endedRoomTTL(room *livev1.LiveRoom) time.Duration {
	if app, ok := r.appOf(room); ok {
		return app.EndedRoomTTL
	}
	return apps.DefaultEndedRoomTTL
}

// tencentFor is the REST client of the room's app; nil when no app with a secret key
// serves it.
func (r *LiveRoomReconciler) tencentFor(room *livev1.LiveRoom) TencentRooms {
	if app, ok := r.appOf(room); ok && app.Tencent != nil {
		return app.Tencent
	}
	return nil
}

func noAPIMessage(room *livev1.LiveRoom) string {
	return fmt.Sprintf("No LiveApp with a readable secret key serves SDKAppID %d in namespace %s, so declared rooms are not created in Tencent", room.Spec.SDKAppID, room.Namespace)
}

// Synced condition reasons.
const (
	reasonCreated      = "Created"
	reasonUpdated      = "Updated"
	reasonRoomIDTaken  = "RoomIDTaken"
	reasonCreateFailed = "CreateFailed"
	reasonUpdateFailed = "UpdateFailed"
	reasonNoAPI        = "TencentAPIDisabled"
)

// observation is what a condition will say.
type observation struct {
	status          bool
	reason, message string
}

// syncResult is what syncing a declared room with Tencent found.
type syncResult struct {
	// tencent is where the room stands in Tencent now: status.tencent.
	tencent livev1.TencentRoomStatus
	// synced is the Synced condition to set; nil leaves it as it is.
	synced *observation
	// stalled is set when only a change of the object can make progress.
	stalled *observation
	err     error
}

// syncDeclared makes Tencent match a declared room's spec: it guards the room with a
// finalizer, creates it (create_room; 100010, "exists with this owner", is success) and
// pushes later spec changes (update_room_info). What Tencent holds is kept in
// status.tencent, which decides between create and update and, on delete, whether to
// destroy. A RoomId that another owner holds (100003) stalls the room at that generation
// instead of retrying for ever.
func (r *LiveRoomReconciler) syncDeclared(ctx context.Context, room *livev1.LiveRoom) syncResult {
	gen, known := room.Generation, room.Status.Tencent
	tc := r.tencentFor(room)
	if tc == nil {
		o := observation{false, reasonNoAPI, noAPIMessage(room)}
		return syncResult{tencent: known, synced: &o, stalled: &o}
	}
	if !controllerutil.ContainsFinalizer(room, livev1.RoomFinalizer) {
		patch := client.MergeFrom(room.DeepCopy())
		controllerutil.AddFinalizer(room, livev1.RoomFinalizer)
		if err := r.Patch(ctx, room, patch); err != nil {
			return syncResult{tencent: known, err: err}
		}
	}
	switch {
	case known.ObservedGeneration != gen:
	case known.State == livev1.TencentRoomCreated:
		return syncResult{tencent: known}
	case known.State == livev1.TencentRoomTaken:
		return taken(room, known)
	}

	reason, err := r.pushToTencent(ctx, tc, room, known.State == livev1.TencentRoomCreated)
	var metadataKeys []string
	if err == nil {
		metadataKeys, err = pushMetadata(ctx, tc, room, known.MetadataKeys)
	}
	switch {
	case err == nil:
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Synced", reason, "%s room %s in Tencent", reason, room.Spec.RoomID)
		return syncResult{
			tencent: livev1.TencentRoomStatus{State: livev1.TencentRoomCreated, ObservedGeneration: gen, MetadataKeys: metadataKeys},
			synced:  &observation{true, reason, "Tencent has the room as specified"},
		}
	case reason == reasonCreated && tencent.IsCode(err, tencent.CodeRoomExists):
		res := taken(room, livev1.TencentRoomStatus{State: livev1.TencentRoomTaken, ObservedGeneration: gen})
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "SyncFailed", reason, res.stalled.message)
		return res
	default:
		failed := reasonCreateFailed
		if reason == reasonUpdated {
			failed = reasonUpdateFailed
		}
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "SyncFailed", reason, "Tencent refused room %s: %v", room.Spec.RoomID, err)
		return syncResult{tencent: known, synced: &observation{false, failed, err.Error()}, err: err}
	}
}

// pushToTencent updates the room when Tencent has it, creates it otherwise (also when it
// was destroyed in Tencent meanwhile, as rooms left empty are), and says which it did.
func (r *LiveRoomReconciler) pushToTencent(ctx context.Context, tc TencentRooms, room *livev1.LiveRoom, exists bool) (string, error) {
	info := roomInfo(&room.Spec)
	if exists {
		err := tc.UpdateRoomInfo(ctx, info)
		if !tencent.IsCode(err, tencent.CodeRoomNotFound) {
			return reasonUpdated, err
		}
	}
	err := tc.CreateRoom(ctx, info)
	if tencent.IsCode(err, tencent.CodeRoomExistsSameOwner) {
		err = nil // a retried create, or a room this owner made before: ours either way
	}
	return reasonCreated, err
}

// pushMetadata makes the room's metadata in Tencent hold spec.metadata: it deletes the
// keys the operator set before (status.tencent.metadataKeys) that the spec no longer has,
// then sets the spec's keys, and returns the keys it set. Only keys the operator set are
// ever deleted: the room's owner and the app's clients set keys of their own, which a
// comparison with get_room_metadata could not tell apart from keys removed from Git.
func pushMetadata(ctx context.Context, tc TencentRooms, room *livev1.LiveRoom, pushed []string) ([]string, error) {
	want := room.Spec.Metadata
	var stale []string
	for _, k := range pushed {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if len(stale) > 0 {
		if err := tc.DelRoomMetadata(ctx, room.Spec.RoomID, stale); err != nil {
			return nil, fmt.Errorf("deleting metadata keys: %w", err)
		}
	}
	if len(want) > 0 {
		if err := tc.SetRoomMetadata(ctx, room.Spec.RoomID, want); err != nil {
			return nil, fmt.Errorf("setting metadata: %w", err)
		}
	}
	return slices.Sorted(maps.Keys(want)), nil
}

// taken is the result for a RoomId that another owner holds in Tencent.
func taken(room *livev1.LiveRoom, state livev1.TencentRoomStatus) syncResult {
	o := observation{false, reasonRoomIDTaken, fmt.Sprintf("RoomId %s is taken in Tencent by another owner (error %d); choose another roomId", room.Spec.RoomID, tencent.CodeRoomExists)}
	return syncResult{tencent: state, synced: &o, stalled: &o}
}

// finalizeDeclared destroys a deleted declared room in Tencent (destroy_room; 100004,
// "no such room", is success) unless its deletionPolicy is Orphan, then lets it go. Only
// the operator's own room is destroyed, never one another owner holds: a room it created
// (status.tencent Created), or, when no create was ever confirmed (its answer may have been
// lost), a room Tencent reports with the spec's owner.
func (r *LiveRoomReconciler) finalizeDeclared(ctx context.Context, room *livev1.LiveRoom) error {
	if !controllerutil.ContainsFinalizer(room, livev1.RoomFinalizer) {
		return nil
	}
	switch state := room.Status.Tencent.State; {
	case room.Spec.DeletionPolicy == livev1.DeletionPolicyOrphan:
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Orphaned", "Delete", "Left room %s running in Tencent (deletionPolicy Orphan)", room.Spec.RoomID)
	case state == livev1.TencentRoomTaken:
	case r.tencentFor(room) == nil:
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "NotDestroyed", "Delete",
			"Room %s was not destroyed in Tencent: %s", room.Spec.RoomID, noAPIMessage(room))
	default:
		if err := r.destroyOwn(ctx, r.tencentFor(room), room, state == livev1.TencentRoomCreated); err != nil {
			r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "DestroyFailed", "Delete", "Destroying room %s in Tencent failed: %v", room.Spec.RoomID, err)
			return err
		}
	}
	patch := client.MergeFrom(room.DeepCopy())
	controllerutil.RemoveFinalizer(room, livev1.RoomFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, room, patch))
}

// destroyOwn destroys the room in Tencent when it is the operator's: created says the
// operator created it; otherwise Tencent is asked whose it is.
func (r *LiveRoomReconciler) destroyOwn(ctx context.Context, tc TencentRooms, room *livev1.LiveRoom, created bool) error {
	if !created {
		info, err := tc.GetRoomInfo(ctx, room.Spec.RoomID)
		switch {
		case tencent.IsCode(err, tencent.CodeRoomNotFound):
			return nil // never created, or gone already
		case err != nil:
			return fmt.Errorf("finding out whose the room is: %w", err)
		}
		owner := room.Spec.Owner
		if owner == "" {
			owner = tc.AdminUser()
		}
		if string(info.OwnerAccount) != owner {
			r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "NotDestroyed", "Delete", "Left room %s in Tencent: another owner holds it", room.Spec.RoomID)
			return nil
		}
	}
	if _, err := tc.DestroyRoom(ctx, room.Spec.RoomID); err != nil && !tencent.IsCode(err, tencent.CodeRoomNotFound) {
		return err
	}
	r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Destroyed", "Delete", "Destroyed room %s in Tencent", room.Spec.RoomID)
	return nil
}

// roomInfo is the room a declared spec asks Tencent for.
func roomInfo(s *livev1.LiveRoomSpec) tencent.RoomInfo {
	info := tencent.RoomInfo{
		RoomID:            tencent.FlexString(s.RoomID),
		RoomType:          s.RoomType,
		OwnerAccount:      tencent.FlexString(s.Owner),
		IsMessageDisabled: new(tencent.FlexBool(s.MessageDisabled)),
		IsSeatEnabled:     new(tencent.FlexBool(s.Seats.Enabled)),
		TakeSeatMode:      tencent.TakeSeatMode(s.Seats.Mode),
		ActivityStatus:    new(tencent.FlexInt(s.ActivityStatus)),
	}
	if info.RoomType == "" {
		info.RoomType = tencent.RoomTypeLive
	}
	if s.RoomName != "" {
		info.RoomName = new(s.RoomName)
	}
	if s.MaxMemberCount > 0 {
		info.MaxMemberCount = new(tencent.FlexInt(s.MaxMemberCount))
	}
	if s.Seats.Max > 0 {
		info.MaxSeatCount = new(tencent.FlexInt(s.Seats.Max))
	}
	if s.PublicVisible != nil {
		info.IsPublicVisible = new(tencent.FlexBool(*s.PublicVisible))
	}
	if s.CoverURL != "" {
		info.CoverURL = new(s.CoverURL)
	}
	if s.BackgroundURL != "" {
		info.BackgroundURL = new(s.BackgroundURL)
	}
	if s.Notice != "" {
		info.Notice = new(s.Notice)
	}
	info.Category = make([]tencent.FlexInt, len(s.Categories))
	for i, c := range s.Categories {
		info.Category[i] = tencent.FlexInt(c)
	}
	return info
}
