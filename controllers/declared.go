package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	DestroyRoom(ctx context.Context, roomID string) (*tencent.Statistic, error)
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

// syncResult is what syncing a declared room with Tencent says about it.
type syncResult struct {
	// synced is the Synced condition to set; nil leaves it as it is.
	synced *metav1.Condition
	// stalled is set when only a change of the object can make progress.
	stalled *metav1.Condition
	err     error
}

// syncDeclared makes Tencent match a declared room's spec: it guards the room with a
// finalizer, creates it (create_room; 100010, "exists with this owner", is success) and
// pushes later spec changes (update_room_info). A RoomId that another owner holds
// (100003) stalls the room instead of retrying for ever.
func (r *LiveRoomReconciler) syncDeclared(ctx context.Context, room *livev1.LiveRoom) syncResult {
	gen := room.Generation
	if r.Tencent == nil {
		c := metav1.Condition{Type: livev1.ConditionSynced, Status: metav1.ConditionFalse, ObservedGeneration: gen, Reason: reasonNoAPI,
			Message: "The operator runs without a Tencent secret key, so declared rooms are not created in Tencent"}
		return syncResult{synced: &c, stalled: stalledBy(c)}
	}
	if !controllerutil.ContainsFinalizer(room, livev1.RoomFinalizer) {
		patch := client.MergeFrom(room.DeepCopy())
		controllerutil.AddFinalizer(room, livev1.RoomFinalizer)
		if err := r.Patch(ctx, room, patch); err != nil {
			return syncResult{err: err}
		}
	}

	prev := meta.FindStatusCondition(room.Status.Conditions, livev1.ConditionSynced)
	// Whether Tencent has the room already decides between create_room and update_room_info.
	created := prev != nil && (prev.Reason == reasonCreated || prev.Reason == reasonUpdated || prev.Reason == reasonUpdateFailed)
	if created && prev.ObservedGeneration == gen && prev.Status == metav1.ConditionTrue {
		return syncResult{}
	}
	if prev != nil && prev.Reason == reasonRoomIDTaken && prev.ObservedGeneration == gen {
		return stalledTaken(room, prev.Message)
	}

	info := roomInfo(&room.Spec)
	reason := reasonCreated
	var err error
	if created {
		reason = reasonUpdated
		err = r.Tencent.UpdateRoomInfo(ctx, info)
		if tencent.IsCode(err, tencent.CodeRoomNotFound) {
			// Destroyed in Tencent meanwhile (rooms left empty are destroyed by Tencent):
			// the changed spec asks for the room, so it is created again.
			reason, err = reasonCreated, r.Tencent.CreateRoom(ctx, info)
		}
	} else {
		err = r.Tencent.CreateRoom(ctx, info)
	}
	switch {
	case err == nil, reason == reasonCreated && tencent.IsCode(err, tencent.CodeRoomExistsSameOwner):
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Synced", reason, "%s room %s in Tencent", reason, room.Spec.RoomID)
		return syncResult{synced: &metav1.Condition{Type: livev1.ConditionSynced, Status: metav1.ConditionTrue, ObservedGeneration: gen,
			Reason: reason, Message: "Tencent has the room as specified"}}
	case reason == reasonCreated && tencent.IsCode(err, tencent.CodeRoomExists):
		msg := fmt.Sprintf("RoomId %s is taken in Tencent by another owner (%v); choose another roomId", room.Spec.RoomID, err)
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "SyncFailed", reason, msg)
		return stalledTaken(room, msg)
	default:
		failed := reasonCreateFailed
		if reason == reasonUpdated {
			failed = reasonUpdateFailed
		}
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "SyncFailed", reason, "Tencent refused room %s: %v", room.Spec.RoomID, err)
		return syncResult{
			synced: &metav1.Condition{Type: livev1.ConditionSynced, Status: metav1.ConditionFalse, ObservedGeneration: gen, Reason: failed, Message: err.Error()},
			err:    err,
		}
	}
}

func stalledTaken(room *livev1.LiveRoom, msg string) syncResult {
	c := metav1.Condition{Type: livev1.ConditionSynced, Status: metav1.ConditionFalse, ObservedGeneration: room.Generation, Reason: reasonRoomIDTaken, Message: msg}
	return syncResult{synced: &c, stalled: stalledBy(c)}
}

// stalledBy is the Stalled condition for a Synced condition that no retry can fix.
func stalledBy(synced metav1.Condition) *metav1.Condition {
	synced.Type, synced.Status = livev1.ConditionStalled, metav1.ConditionTrue
	return &synced
}

// finalizeDeclared destroys a deleted declared room in Tencent (destroy_room; 100004,
// "no such room", is success) unless its deletionPolicy is Orphan, then lets it go.
// A room the operator never created, or whose RoomId another owner holds, is left alone.
func (r *LiveRoomReconciler) finalizeDeclared(ctx context.Context, room *livev1.LiveRoom) error {
	if !controllerutil.ContainsFinalizer(room, livev1.RoomFinalizer) {
		return nil
	}
	synced := meta.FindStatusCondition(room.Status.Conditions, livev1.ConditionSynced)
	ours := synced != nil && synced.Reason != reasonRoomIDTaken && synced.Reason != reasonNoAPI
	switch {
	case room.Spec.DeletionPolicy == livev1.DeletionPolicyOrphan:
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Orphaned", "Delete", "Left room %s running in Tencent (deletionPolicy Orphan)", room.Spec.RoomID)
	case !ours:
	case r.Tencent == nil:
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "NotDestroyed", "Delete", "Room %s was not destroyed in Tencent: the operator has no Tencent secret key", room.Spec.RoomID)
	default:
		if _, err := r.Tencent.DestroyRoom(ctx, room.Spec.RoomID); err != nil && !tencent.IsCode(err, tencent.CodeRoomNotFound) {
			r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, "DestroyFailed", "Delete", "Destroying room %s in Tencent failed: %v", room.Spec.RoomID, err)
			return errors.Join(errors.New("destroying the room in Tencent"), err)
		}
		r.Recorder.Eventf(room, nil, corev1.EventTypeNormal, "Destroyed", "Delete", "Destroyed room %s in Tencent", room.Spec.RoomID)
	}
	patch := client.MergeFrom(room.DeepCopy())
	controllerutil.RemoveFinalizer(room, livev1.RoomFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, room, patch))
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
