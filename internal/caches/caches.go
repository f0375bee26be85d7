// Package caches says what each role's manager caches and trims each object to what the
// role reads on its way into the cache: at thousands of rooms, the cache is most of the
// manager's memory. Tests build their managers with these options too, so a reconciler
// that starts reading a trimmed field fails its tests.
//
// Cached objects may share maps and pointers with each other (see shared.go): readers get
// deep copies, and the few that read the cache in place (UnsafeDisableDeepCopy, event
// handlers) only read, as controller-runtime requires of them anyway.
package caches

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

// lastApplied is the annotation client-side kubectl apply keeps a copy of the object in;
// a declared room applied that way carries its whole spec twice.
const lastApplied = corev1.LastAppliedConfigAnnotation

// Controller is the cache of the reconcilers and the resync: LiveRooms without the facts
// only the callback server reads (seats, admins, audience, statistics) and with only the
// origin annotation, and of Jobs only the recording Jobs, with only what the controllers
// read of them.
func Controller() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&livev1.LiveRoom{}: {Transform: TrimRoomForController},
			&batchv1.Job{}:     {Label: recordingJobs, Transform: trimJob},
		},
	}
}

// CallbackServer is the cache of the callback server: whole LiveRooms, which it computes
// each event's change from, without managed fields and kubectl's copy; LiveApps, which
// say which app serves an SDKAppID; and the apps' projection Secrets in the operator's
// namespace, which hold their callback tokens (see WithProjections).
func CallbackServer(operatorNamespace string) cache.Options {
	return WithProjections(cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&livev1.LiveRoom{}: {Transform: trimRoom},
		},
	}, operatorNamespace)
}

// All is the cache of a manager running every role in one process.
func All() cache.Options {
	opts := Controller()
	opts.ByObject[&livev1.LiveRoom{}] = cache.ByObject{Transform: trimRoom}
	return opts
}

// trimRoom drops what no role reads from a LiveRoom, and shares the strings rooms have
// in common.
func trimRoom(o any) (any, error) {
	if room, ok := o.(*livev1.LiveRoom); ok {
		room.ManagedFields = nil
		if _, ok := room.Annotations[lastApplied]; ok {
			room.Annotations = withoutKey(room.Annotations, lastApplied)
		}
		internRoom(room)
	}
	return o, nil
}

// internRoom shares the strings that many rooms hold alike. Owners, names and ids are
// the room's own and stay as they are.
func internRoom(room *livev1.LiveRoom) {
	room.Namespace = intern(room.Namespace)
	room.Labels = internedLabels(room.Labels)
	room.Spec.RoomType = intern(room.Spec.RoomType)
	room.Spec.Seats.Mode = internAs(room.Spec.Seats.Mode)
	st := &room.Status
	st.Phase, st.EndReason, st.Tencent.State = internAs(st.Phase), internAs(st.EndReason), internAs(st.Tencent.State)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type, c.Status, c.Reason, c.Message = intern(c.Type), internAs(c.Status), intern(c.Reason), intern(c.Message)
	}
	for i := range st.Recordings {
		rs := &st.Recordings[i]
		rs.Policy, rs.Phase = intern(rs.Policy), internAs(rs.Phase)
	}
}

// internedLabels is labels with shared keys, and shared values but for the owner's.
func internedLabels(in map[string]string) map[string]string {
	if len(in) == 0 {
		return in
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if k != livev1.OwnerLabel {
			v = intern(v)
		}
		out[intern(k)] = v
	}
	return out
}

// TrimRoomForController also drops the status fields only callbacks change and the
// controller never reads, and every annotation but the origin. The room store reads a
// room whole before changing it when its cache is trimmed (roomstore.Config.CacheTrimsRooms):
// mutations computed on a trimmed room may only report changes they would not make, never
// miss one, so only fields that no mutation compares to decide "unchanged" are dropped.
// (The store's writes derive the annotations and labels they own from the origin and the
// spec, never from the annotations it read.)
func TrimRoomForController(o any) (any, error) {
	room, ok := o.(*livev1.LiveRoom)
	if !ok {
		return o, nil
	}
	room.ManagedFields = nil
	room.Annotations = originOnly(room.Annotations)
	internRoom(room)
	st := &room.Status
	st.Seats, st.OccupiedSeats, st.Admins, st.Statistics, st.LastEventTime = nil, 0, nil, nil, nil
	st.Audience = livev1.AudienceStatus{}
	st.EventTimes.AdminAccounts = nil
	return room, nil
}

// originOnly is the annotations with only the origin, the one a controller reads; rooms of
// one origin share the map.
func originOnly(annotations map[string]string) map[string]string {
	origin, ok := annotations[livev1.OriginAnnotation]
	if !ok {
		return nil
	}
	return sharedMap(livev1.OriginAnnotation, origin)
}

func withoutKey(m map[string]string, key string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// recordingJobs selects the Jobs the operator creates.
var recordingJobs = func() labels.Selector {
	req, err := labels.NewRequirement(livev1.RoomLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}()

// trimJob is the cache transform of recording Jobs. The controllers read a Job's policy
// (policy label, or the annotation when the name is not a valid label value), its
// controlling LiveRoom, spec.suspend, and of its status the active count, start and
// completion times and the type, status and transition time of its conditions; nothing
// else, so everything else goes, the pod template first. Jobs of one policy share their
// label and annotation maps. (Suspending is a merge patch of spec.suspend alone, which a
// trimmed Job computes as well as a whole one.)
func trimJob(o any) (any, error) {
	job, ok := o.(*batchv1.Job)
	if !ok {
		return o, nil
	}
	job.ManagedFields = nil
	job.Namespace = intern(job.Namespace)
	policyKey, hasKey := job.Labels[livev1.PolicyLabel]
	policyName := job.Annotations[livev1.PolicyLabel]
	job.Labels, job.Annotations = nil, nil
	if hasKey {
		job.Labels = sharedMap(livev1.PolicyLabel, policyKey)
	}
	if policyName != "" && policyName != policyKey {
		job.Annotations = sharedMap(livev1.PolicyLabel, policyName)
	}
	job.OwnerReferences = controllerOnly(job.OwnerReferences)
	job.Spec = batchv1.JobSpec{Suspend: job.Spec.Suspend}
	job.Status = batchv1.JobStatus{
		Conditions:     trimJobConditions(job.Status.Conditions),
		StartTime:      job.Status.StartTime,
		CompletionTime: job.Status.CompletionTime,
		Active:         job.Status.Active,
	}
	return job, nil
}

// controllerOnly keeps the controller reference alone, with the API version, kind and
// flags of LiveRooms' references shared.
func controllerOnly(refs []metav1.OwnerReference) []metav1.OwnerReference {
	for _, ref := range refs {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		if ref.APIVersion == roomAPIVersion && ref.Kind == roomKind {
			ref.APIVersion, ref.Kind = roomAPIVersion, roomKind
		}
		ref.Controller = sharedBool(true)
		if ref.BlockOwnerDeletion != nil {
			ref.BlockOwnerDeletion = sharedBool(*ref.BlockOwnerDeletion)
		}
		return []metav1.OwnerReference{ref}
	}
	return nil
}

var (
	roomAPIVersion = livev1.GroupVersion.String()
	roomKind       = "LiveRoom"
)

// trimJobConditions keeps of each condition what decides a recording's phase and end.
func trimJobConditions(conds []batchv1.JobCondition) []batchv1.JobCondition {
	if len(conds) == 0 {
		return nil
	}
	out := make([]batchv1.JobCondition, len(conds))
	for i, c := range conds {
		out[i] = batchv1.JobCondition{
			Type:               internAs(c.Type),
			Status:             internAs(c.Status),
			LastTransitionTime: c.LastTransitionTime,
		}
	}
	return out
}
