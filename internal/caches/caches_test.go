package caches

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
)

var someTime = metav1.NewTime(time.Unix(1700000000, 0))

func recordingJob(name, policy string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "rooms", UID: "job-uid", ResourceVersion: "7",
			Labels:      map[string]string{livev1.RoomLabel: "room-a", livev1.PolicyLabel: policy, "team": "media"},
			Annotations: map[string]string{livev1.PolicyLabel: policy, "note": "kept by people"},
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "ConfigMap", Name: "other", UID: "cm-uid"},
				{APIVersion: livev1.GroupVersion.String(), Kind: "LiveRoom", Name: "room-a", UID: "room-uid", Controller: new(true), BlockOwnerDeletion: new(true)},
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "liveroom-controller"}},
		},
		Spec: batchv1.JobSpec{
			Suspend: new(true), BackoffLimit: new(int32(3)), Selector: &metav1.LabelSelector{},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "record", Image: "recorder"}}}},
		},
		Status: batchv1.JobStatus{
			Active: 1, Ready: new(int32(1)), Failed: 2, StartTime: &someTime, CompletionTime: &someTime,
			Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue, LastTransitionTime: someTime,
				LastProbeTime: someTime, Reason: "JobSuspended", Message: "Job suspended"}},
			UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"pod"}},
		},
	}
}

func trimmedJob(t *testing.T, job *batchv1.Job) *batchv1.Job {
	t.Helper()
	out, err := trimJob(job)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*batchv1.Job)
}

func TestTrimJobKeepsWhatTheControllersRead(t *testing.T) {
	g := NewWithT(t)
	job := trimmedJob(t, recordingJob("room-a-record", "record"))

	g.Expect(job.ObjectMeta).To(Equal(metav1.ObjectMeta{
		Name: "room-a-record", Namespace: "rooms", UID: "job-uid", ResourceVersion: "7",
		// The annotation says no more than the label: a policy name that is a valid label value.
		Labels: map[string]string{livev1.PolicyLabel: "record"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: livev1.GroupVersion.String(), Kind: "LiveRoom", Name: "room-a", UID: "room-uid",
			Controller: new(true), BlockOwnerDeletion: new(true)}},
	}))
	g.Expect(job.Spec).To(Equal(batchv1.JobSpec{Suspend: new(true)}))
	g.Expect(job.Status).To(Equal(batchv1.JobStatus{
		Active: 1, StartTime: &someTime, CompletionTime: &someTime,
		Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue, LastTransitionTime: someTime}},
	}))
}

func TestTrimJobKeepsAPolicyNameTheLabelCannotHold(t *testing.T) {
	g := NewWithT(t)
	job := recordingJob("room-a-long", "a-policy-name-longer-than-a-label-value-may-be-0123456789-0123456789")
	job.Labels[livev1.PolicyLabel] = "a-policy-name-longer-than-a-label-value-may-be-012345-0123456789"
	job = trimmedJob(t, job)
	g.Expect(job.Labels).To(Equal(map[string]string{livev1.PolicyLabel: "a-policy-name-longer-than-a-label-value-may-be-012345-0123456789"}))
	g.Expect(job.Annotations).To(Equal(map[string]string{livev1.PolicyLabel: "a-policy-name-longer-than-a-label-value-may-be-0123456789-0123456789"}))
}

func roomWith(annotations map[string]string, message string) *livev1.LiveRoom {
	return &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: "room-a", Namespace: "rooms", Annotations: annotations,
			Labels: map[string]string{livev1.RoomTypeLabel: "Live", livev1.OwnerLabel: "user1"}},
		Spec: livev1.LiveRoomSpec{RoomID: "room-a", RoomType: "Live", Owner: "user1"},
		Status: livev1.LiveRoomStatus{
			Phase: livev1.RoomPhaseLive, Owner: "user1", Admins: []string{"admin"}, OccupiedSeats: 1,
			Seats:      []livev1.SeatStatus{{Index: 0, Member: "user1"}},
			Conditions: []metav1.Condition{{Type: livev1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Reconciled", Message: message}},
			Recordings: []livev1.RecordingStatus{{Policy: "record", Job: "room-a-record", Phase: livev1.RecordingRunning}},
		},
	}
}

func trimForController(t *testing.T, room *livev1.LiveRoom) *livev1.LiveRoom {
	t.Helper()
	out, err := TrimRoomForController(room)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*livev1.LiveRoom)
}

func TestTrimRoomForControllerKeepsOnlyTheOrigin(t *testing.T) {
	g := NewWithT(t)
	room := trimForController(t, roomWith(map[string]string{
		livev1.OriginAnnotation: livev1.OriginCallback, lastApplied: "{}", "argocd.argoproj.io/tracking-id": "app:live/LiveRoom:rooms/room-a",
	}, "Room is Live"))
	g.Expect(room.Annotations).To(Equal(map[string]string{livev1.OriginAnnotation: livev1.OriginCallback}))
	g.Expect(room.Status.Seats).To(BeNil())
	g.Expect(room.Status.Admins).To(BeNil())
	g.Expect(room.Status.Owner).To(Equal("user1"), "the room store compares it")
	g.Expect(room.Labels).To(Equal(map[string]string{livev1.RoomTypeLabel: "Live", livev1.OwnerLabel: "user1"}))
	g.Expect(room.Status.Recordings).To(HaveLen(1))

	declared := trimForController(t, roomWith(map[string]string{"argocd.argoproj.io/tracking-id": "x"}, "Room is Live"))
	g.Expect(declared.Annotations).To(BeNil())
	g.Expect(declared.Declared()).To(BeTrue())
}

// Rooms decoded one by one hold their own copies of every string and map; trimmed, the
// ones they have alike are one.
func TestTrimmedRoomsShareWhatTheyHaveAlike(t *testing.T) {
	g := NewWithT(t)
	origin := func() map[string]string {
		return map[string]string{livev1.OriginAnnotation: string([]byte(livev1.OriginCallback))}
	}
	message := func() string { return string([]byte("Room is Live with 1 active recording(s)")) }
	a := trimForController(t, roomWith(origin(), message()))
	b := trimForController(t, roomWith(origin(), message()))

	g.Expect(reflect.ValueOf(a.Annotations).UnsafePointer()).To(Equal(reflect.ValueOf(b.Annotations).UnsafePointer()))
	g.Expect(unsafe.StringData(a.Status.Conditions[0].Message)).To(Equal(unsafe.StringData(b.Status.Conditions[0].Message)))

	jobA, jobB := trimmedJob(t, recordingJob("a", "record")), trimmedJob(t, recordingJob("b", "record"))
	g.Expect(reflect.ValueOf(jobA.Labels).UnsafePointer()).To(Equal(reflect.ValueOf(jobB.Labels).UnsafePointer()))

	// Readers get deep copies: changing one leaves the shared map alone.
	c := a.DeepCopy()
	c.Annotations[livev1.OriginAnnotation] = livev1.OriginResync
	g.Expect(b.Annotations).To(HaveKeyWithValue(livev1.OriginAnnotation, livev1.OriginCallback))
}
