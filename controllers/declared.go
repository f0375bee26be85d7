package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// TencentRooms is the part of Tencent's REST API that declared rooms need;
// *tencent.Client is the real one.
type TencentRooms interface {
	CreateRoom(ctx context.Context, info tencent.RoomInfo) error
	UpdateRoomInfo(ctx context.Context, info tencent.RoomInfo) error
	GetRoomInfo(ctx context.Context, roomID string) (*tencent.RoomInfo, error)
	DestroyRoom(ctx context.Context, roomID string) (*tencent.Statistic, error)
	// AdminUser is the account the API is called as: a room created without an owner
	// is the admin's.
	AdminUser() string
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
	if r.Tencent == nil {
		o := observation{false, reasonNoAPI, "The operator runs without a Tencent secret key, so declared rooms are not created in Tencent"}
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

	reason, err := r.pushToTencent(ctx, room, known.State == livev1.TencentRoomCreated)
	switch {
	case err == nil:
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Synced", reason, "%s room %s in Tencent", reason, room.Spec.RoomID)
		return syncResult{
			tencent: livev1.TencentRoomStatus{State: livev1.TencentRoomCreated, ObservedGeneration: gen},
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
func (r *LiveRoomReconciler) pushToTencent(ctx context.Context, room *livev1.LiveRoom, exists bool) (string, error) {
	info := roomInfo(&room.Spec)
	if exists {
		err := r.Tencent.UpdateRoomInfo(ctx, info)
		if !tencent.IsCode(err, tencent.CodeRoomNotFound) {
			return reasonUpdated, err
		}
	}
	err := r.Tencent.CreateRoom(ctx, info)
	if tencent.IsCode(err, tencent.CodeRoomExistsSameOwner) {
		err = nil // a retried create, or a room this owner made before: ours either way
	}
	return reasonCreated, err
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
	case r.Tencent == nil:
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "NotDestroyed", "Delete", "Room %s was not destroyed in Tencent: the operator has no Tencent secret key", room.Spec.RoomID)
	default:
		if err := r.destroyOwn(ctx, room, state == livev1.TencentRoomCreated); err != nil {
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
func (r *LiveRoomReconciler) destroyOwn(ctx context.Context, room *livev1.LiveRoom, created bool) error {
	if !created {
		info, err := r.Tencent.GetRoomInfo(ctx, room.Spec.RoomID)
		switch {
		case tencent.IsCode(err, tencent.CodeRoomNotFound):
			return nil // never created, or gone already
		case err != nil:
			return fmt.Errorf("finding out whose the room is: %w", err)
		}
		owner := room.Spec.Owner
		if owner == "" {
			owner = r.Tencent.AdminUser()
		}
		if string(info.OwnerAccount) != owner {
			r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "NotDestroyed", "Delete", "Left room %s in Tencent: another owner holds it", room.Spec.RoomID)
			return nil
		}
	}
	if _, err := r.Tencent.DestroyRoom(ctx, room.Spec.RoomID); err != nil && !tencent.IsCode(err, tencent.CodeRoomNotFound) {
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
