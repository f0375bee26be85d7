// Package controllers holds the operator's reconcilers: LiveRoom (recording Jobs, ended
// room clean-up, declared rooms in Tencent) and RecordingPolicy (status).
package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	liveac "github.com/liveroom-io/liveroom-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/conditions"
)

// FieldOwner is the server-side apply field manager of the controllers' status writes.
const FieldOwner = "liveroom-controller"

// LiveRoomReconciler keeps one recording Job per live room and selecting policy, stops
// recordings that are no longer wanted, and deletes ended rooms discovered by callback or
// resync once their TTL has passed.
type LiveRoomReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// Apps finds a room's app: how long its ended rooms are kept, and the REST client
	// that creates, updates and destroys its declared rooms.
	Apps AppLookup
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// jobPolicies are the policies recording Jobs were made from, by namespace.
	jobPolicies policyNames
}

// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms/status,verbs=get;patch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=liverooms/finalizers,verbs=update
// +kubebuilder:rbac:groups=live.liveroom.io,resources=recordingpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func (r *LiveRoomReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile brings one room's recordings to what its policies ask for.
func (r *LiveRoomReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var room livev1.LiveRoom
	if err := r.Get(ctx, req.NamespacedName, &room); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !room.DeletionTimestamp.IsZero() {
		if room.Declared() {
			return ctrl.Result{}, r.finalizeDeclared(ctx, &room)
		}
		return ctrl.Result{}, nil
	}

	expired, wait := r.expired(&room)
	if expired {
		log.Info("Deleting ended room past its TTL", "roomId", room.Spec.RoomID, "endTime", room.Status.EndTime.UTC())
		if err := r.Delete(ctx, &room, client.Preconditions{UID: &room.UID}); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, nil
	}
	var sync syncResult
	if room.Declared() {
		sync = r.syncDeclared(ctx, &room)
	}
	if err := r.reconcileRecordings(ctx, &room, sync); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}

// expired reports whether an ended, discovered room has outlived the TTL, or else how long
// until it does (0 for rooms that never expire).
func (r *LiveRoomReconciler) expired(room *livev1.LiveRoom) (bool, time.Duration) {
	ttl := r.endedRoomTTL(room)
	if room.Declared() || room.Status.Phase != livev1.RoomPhaseEnded || room.Status.EndTime == nil || ttl <= 0 {
		return false, 0
	}
	left := room.Status.EndTime.Add(ttl).Sub(r.now())
	return left <= 0, left
}

func (r *LiveRoomReconciler) reconcileRecordings(ctx context.Context, room *livev1.LiveRoom, sync syncResult) error {
	var policies livev1.RecordingPolicyList
	if err := r.List(ctx, &policies, client.InNamespace(room.Namespace)); err != nil {
		return err
	}
	byPolicy, err := r.roomJobs(ctx, room, policies.Items)
	if err != nil {
		return err
	}

	var errs []error
	if sync.err != nil {
		errs = append(errs, fmt.Errorf("syncing with Tencent: %w", sync.err))
	}
	for i := range policies.Items {
		p := &policies.Items[i]
		if !wantsRecording(room, p) {
			continue
		}
		key := policyKey(p.Name)
		job, err := r.ensureRecording(ctx, room, p, byPolicy[key])
		if err != nil {
			errs = append(errs, fmt.Errorf("policy %s: %w", p.Name, err))
			continue
		}
		byPolicy[key] = job
	}
	// Every recording no policy wants any more is stopped, its Job kept for its history.
	for key, job := range byPolicy {
		if r.stillWanted(room, policies.Items, key) || finished(recordingPhase(job)) || recordingPhase(job) == livev1.RecordingStopped {
			continue
		}
		if err := r.stopRecording(ctx, room, job); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", job.Name, err))
		}
	}
	return r.updateStatus(ctx, room, byPolicy, sync, errs)
}

func (r *LiveRoomReconciler) stillWanted(room *livev1.LiveRoom, policies []livev1.RecordingPolicy, key string) bool {
	for i := range policies {
		if policyKey(policies[i].Name) == key && wantsRecording(room, &policies[i]) {
			return true
		}
	}
	return false
}

// ensureRecording creates the room's Job for the policy, or resumes it when it was
// stopped and is wanted again. A running Job keeps the template it started with.
func (r *LiveRoomReconciler) ensureRecording(ctx context.Context, room *livev1.LiveRoom, p *livev1.RecordingPolicy, job *batchv1.Job) (*batchv1.Job, error) {
	if job != nil {
		if recordingPhase(job) != livev1.RecordingStopped {
			return job, nil
		}
		if err := r.setSuspend(ctx, job, false); err != nil {
			return nil, err
		}
		r.Recorder.Eventf(room, job, corev1.EventTypeNormal, "RecordingResumed", "Resume", "Resumed recording Job %s of policy %s", job.Name, p.Name)
		return job, nil
	}
	job, err := recordingJob(room, p, r.Scheme)
	if err != nil {
		return nil, err
	}
	if err := r.Create(ctx, job); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			r.Recorder.Eventf(room, p, corev1.EventTypeWarning, "RecordingFailed", "Create", "Creating recording Job %s failed: %v", job.Name, err)
			return nil, err
		}
		// The cache had not seen it yet; the Job's own event brings it back here.
		return job, nil
	}
	r.Recorder.Eventf(room, job, corev1.EventTypeNormal, "RecordingStarted", "Create", "Started recording Job %s for policy %s", job.Name, p.Name)
	return job, nil
}

// stopRecording suspends the Job: the Job controller ends its pods gracefully and the Job
// object with its history stays.
func (r *LiveRoomReconciler) stopRecording(ctx context.Context, room *livev1.LiveRoom, job *batchv1.Job) error {
	if err := r.setSuspend(ctx, job, true); err != nil {
		return err
	}
	r.Recorder.Eventf(room, job, corev1.EventTypeNormal, "RecordingStopped", "Suspend", "Stopped recording Job %s", job.Name)
	return nil
}

func (r *LiveRoomReconciler) setSuspend(ctx context.Context, job *batchv1.Job, suspend bool) error {
	patch := client.MergeFrom(job.DeepCopy())
	job.Spec.Suspend = &suspend
	return r.Patch(ctx, job, patch)
}

// updateStatus writes the controller's part of the room's status (what
// livev1.StatusOwnerController owns) when it changed, and returns the reconcile errors.
func (r *LiveRoomReconciler) updateStatus(ctx context.Context, room *livev1.LiveRoom, jobs map[string]*batchv1.Job, sync syncResult, errs []error) error {
	st := room.Status.OwnedBy(livev1.StatusOwnerController)
	var running int
	st.Recordings, running = r.recordings(room, jobs)
	st.Tencent = sync.tencent
	st.ObservedGeneration = room.Generation
	summarize(conditions.For(&st.Conditions, room.Generation), room, running, sync, errs)

	if !equality.Semantic.DeepEqual(st, room.Status.OwnedBy(livev1.StatusOwnerController)) {
		ac := liveac.LiveRoom(room.Name, room.Namespace).WithStatus(controllerStatusApply(&st))
		if err := r.Status().Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// recordings is the room's view of its recording Jobs, sorted by policy, and how many of
// them run or are about to. A recording seen failing for the first time gets an Event.
func (r *LiveRoomReconciler) recordings(room *livev1.LiveRoom, jobs map[string]*batchv1.Job) ([]livev1.RecordingStatus, int) {
	out := make([]livev1.RecordingStatus, 0, len(jobs))
	running := 0
	for _, job := range jobs {
		rs := recordingStatus(job)
		prev := findRecording(room.Status.Recordings, rs.Policy)
		if rs.Phase == livev1.RecordingStopped && rs.CompletionTime == nil {
			// Until the Job controller reports the suspension, the time it was asked for.
			rs.CompletionTime = &metav1.Time{Time: r.now().Truncate(time.Second)}
			if prev != nil && prev.CompletionTime != nil {
				rs.CompletionTime = prev.CompletionTime
			}
		}
		if rs.Phase == livev1.RecordingRunning || rs.Phase == livev1.RecordingPending {
			running++
		}
		if rs.Phase == livev1.RecordingFailed && (prev == nil || prev.Phase != rs.Phase) {
			r.Recorder.Eventf(room, job, corev1.EventTypeWarning, "RecordingFailed", "Run", "Recording Job %s failed", job.Name)
		}
		out = append(out, rs)
	}
	slices.SortFunc(out, func(a, b livev1.RecordingStatus) int { return strings.Compare(a.Policy, b.Policy) })
	return out, running
}

// summarize sets the room's conditions from what the reconcile observed.
func summarize(c conditions.Set, room *livev1.LiveRoom, running int, sync syncResult, errs []error) {
	if running > 0 {
		c.Mark(livev1.ConditionRecording, true, "Recording", fmt.Sprintf("%d recording(s) running or starting", running))
	} else {
		c.Mark(livev1.ConditionRecording, false, notRecordingReason(room), "No recording is running")
	}
	if o := sync.synced; o != nil {
		c.Mark(livev1.ConditionSynced, o.status, o.reason, o.message)
	}
	switch {
	case sync.stalled != nil:
		c.MarkStalled(sync.stalled.reason, sync.stalled.message)
	case len(errs) > 0:
		c.MarkReconciling("ReconcileError", joinErrors(errs))
	default:
		c.MarkReady("Reconciled", readyMessage(room, running))
	}
}

// controllerStatusApply is the typed apply of the controller's part of a room's status.
func controllerStatusApply(st *livev1.LiveRoomStatus) *liveac.LiveRoomStatusApplyConfiguration {
	ac := liveac.LiveRoomStatus().WithObservedGeneration(st.ObservedGeneration).WithConditions(conditionsApply(st.Conditions)...)
	for _, rs := range st.Recordings {
		rec := liveac.RecordingStatus().WithPolicy(rs.Policy).WithJob(rs.Job).WithPhase(rs.Phase)
		if rs.StartTime != nil {
			rec.WithStartTime(*rs.StartTime)
		}
		if rs.CompletionTime != nil {
			rec.WithCompletionTime(*rs.CompletionTime)
		}
		ac.WithRecordings(rec)
	}
	if t := st.Tencent; t.State != "" || t.ObservedGeneration != 0 || len(t.MetadataKeys) > 0 {
		ac.WithTencent(liveac.TencentRoomStatus().WithState(t.State).WithObservedGeneration(t.ObservedGeneration).WithMetadataKeys(t.MetadataKeys...))
	}
	return ac
}

// conditionsApply converts conditions to their apply configurations.
func conditionsApply(list []metav1.Condition) []*metav1ac.ConditionApplyConfiguration {
	out := make([]*metav1ac.ConditionApplyConfiguration, len(list))
	for i, c := range list {
		out[i] = metav1ac.Condition().WithType(c.Type).WithStatus(c.Status).WithObservedGeneration(c.ObservedGeneration).
			WithLastTransitionTime(c.LastTransitionTime).WithReason(c.Reason).WithMessage(c.Message)
	}
	return out
}

func findRecording(list []livev1.RecordingStatus, policy string) *livev1.RecordingStatus {
	for i := range list {
		if list[i].Policy == policy {
			return &list[i]
		}
	}
	return nil
}

func notRecordingReason(room *livev1.LiveRoom) string {
	switch {
	case room.Spec.Recording.Disabled:
		return "OptedOut"
	case room.Status.Phase == livev1.RoomPhaseEnded:
		return "RoomEnded"
	case room.Status.Phase != livev1.RoomPhaseLive:
		return "RoomNotLive"
	}
	return "NoPolicy"
}

func readyMessage(room *livev1.LiveRoom, running int) string {
	if room.Status.Phase == "" {
		return "Room has not been reported by Tencent yet"
	}
	return fmt.Sprintf("Room is %s with %d active recording(s)", room.Status.Phase, running)
}

func joinErrors(errs []error) string {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// SetupWithManager registers the reconciler. LiveRoom status updates that callbacks make
// every second (audience, seats) do not wake it: only what decides recordings does.
func (r *LiveRoomReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Apps == nil {
		return errors.New("LiveRoomReconciler needs Apps, the registry of the serving apps")
	}
	// The Job informer starts with the cache, in every replica, rather than with the
	// controller once the cache has synced: a replica taking over the lease, or starting,
	// lists Jobs and rooms at once.
	if _, err := mgr.GetCache().GetInformer(context.Background(), &batchv1.Job{}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&livev1.LiveRoom{}, builder.WithPredicates(roomRecordingChanged)).
		Watches(&batchv1.Job{}, r.jobEvents()).
		Watches(&livev1.RecordingPolicy{}, handler.EnqueueRequestsFromMapFunc(r.roomsOfPolicy), builder.WithPredicates(policyRecordingChanged)).
		// An app's TTL or REST client changing concerns every room of its namespace.
		WatchesRawSource(source.Channel(r.Apps.Changes(), handler.EnqueueRequestsFromMapFunc(r.roomsOfApp))).
		Named("liveroom").
		Complete(r)
}

// roomsOfApp enqueues the rooms of the namespace of an app that changed.
func (r *LiveRoomReconciler) roomsOfApp(ctx context.Context, app client.Object) []reconcile.Request {
	var rooms livev1.LiveRoomList
	if err := r.List(ctx, &rooms, client.InNamespace(app.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "Listing the rooms of a changed app", "liveApp", client.ObjectKeyFromObject(app))
		return nil
	}
	reqs := make([]reconcile.Request, len(rooms.Items))
	for i := range rooms.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rooms.Items[i])}
	}
	return reqs
}

// policyRecordingChanged passes policy updates that can change recordings, not the status
// writes of the RecordingPolicy controller, which would otherwise requeue every room.
var policyRecordingChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*livev1.RecordingPolicy), e.ObjectNew.(*livev1.RecordingPolicy)
		return o.Generation != n.Generation || policyUsable(o) != policyUsable(n)
	},
}

// roomRecordingChanged passes LiveRoom updates that can change its recordings or TTL.
var roomRecordingChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*livev1.LiveRoom), e.ObjectNew.(*livev1.LiveRoom)
		return o.Generation != n.Generation ||
			!reflect.DeepEqual(o.Labels, n.Labels) ||
			o.Status.Phase != n.Status.Phase ||
			!reflect.DeepEqual(o.Status.EndTime, n.Status.EndTime) ||
			!reflect.DeepEqual(o.Status.Recordings, n.Status.Recordings) ||
			!n.DeletionTimestamp.IsZero()
	},
}

// roomsOfPolicy enqueues the rooms a policy change may affect: those its selector matches
// now and those that have a Job of it (the selector may have stopped matching them).
func (r *LiveRoomReconciler) roomsOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	p := o.(*livev1.RecordingPolicy)
	seen := map[string]bool{}
	var reqs []reconcile.Request
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: p.Namespace, Name: name}})
		}
	}
	if sel, err := policySelector(p); err == nil {
		var rooms livev1.LiveRoomList
		if err := r.List(ctx, &rooms, client.InNamespace(p.Namespace), client.MatchingLabelsSelector{Selector: sel}); err == nil {
			for i := range rooms.Items {
				add(rooms.Items[i].Name)
			}
		}
	}
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(p.Namespace), client.MatchingLabels{livev1.PolicyLabel: policyKey(p.Name)}); err == nil {
		for i := range jobs.Items {
			if room := roomOfJob(&jobs.Items[i]); room != "" {
				add(room)
			}
		}
	}
	return reqs
}
