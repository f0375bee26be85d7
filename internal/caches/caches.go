// Package caches says what each role's manager caches and trims each object to what the
// role reads on its way into the cache: at thousands of rooms, the cache is most of the
// manager's memory. Tests build their managers with these options too, so a reconciler
// that starts reading a trimmed field fails its tests.
package caches

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
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
// only the callback server reads (seats, admins, audience, statistics), and of Jobs only
// the recording Jobs, without their pod templates.
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

// trimRoom drops what no role reads from a LiveRoom.
func trimRoom(o any) (any, error) {
	if room, ok := o.(*livev1.LiveRoom); ok {
		room.ManagedFields = nil
		if _, ok := room.Annotations[lastApplied]; ok {
			room.Annotations = withoutKey(room.Annotations, lastApplied)
		}
	}
	return o, nil
}

// TrimRoomForController also drops the status fields only callbacks change and the
// controller never reads. The room store reads a room whole before changing it when its
// cache is trimmed (roomstore.Config.CacheTrimsRooms): mutations computed on a trimmed
// room may only report changes they would not make, never miss one, so only fields that
// no mutation compares to decide "unchanged" are dropped.
func TrimRoomForController(o any) (any, error) {
	if _, err := trimRoom(o); err != nil {
		return nil, err
	}
	if room, ok := o.(*livev1.LiveRoom); ok {
		st := &room.Status
		st.Seats, st.OccupiedSeats, st.Admins, st.Statistics, st.LastEventTime = nil, 0, nil, nil, nil
		st.Audience = livev1.AudienceStatus{}
		st.EventTimes.AdminAccounts = nil
	}
	return o, nil
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

// trimJob is the cache transform of recording Jobs: the controllers read their labels,
// annotations, owner, suspend flag and status, never the pod template or managed fields,
// which are most of a Job's size. (Suspending is a merge patch of spec.suspend alone.)
func trimJob(o any) (any, error) {
	if job, ok := o.(*batchv1.Job); ok {
		job.ManagedFields = nil
		job.Spec.Template = corev1.PodTemplateSpec{}
		job.Spec.Selector = nil
	}
	return o, nil
}
