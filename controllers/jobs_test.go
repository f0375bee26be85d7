package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
)

// A recording Job whose policy is gone and which the room's status does not list (its
// room's status write failed, then the policy was deleted) is still found and stopped.
func TestJobOfDeletedPolicyIsStopped(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ctx := context.Background()
	room := liveRoom(t, ns, "orphaned", livev1.OriginCallback, nil)
	const gone = "deleted-policy"
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: naming.JobName(room.Name, gone), Namespace: ns,
			Labels:      jobLabels(room.Name, gone),
			Annotations: map[string]string{livev1.PolicyLabel: gone},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: livev1.GroupVersion.String(), Kind: "LiveRoom",
				Name: room.Name, UID: room.UID, Controller: new(true)}},
		},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "record", Image: "busybox:1.36"}},
		}}},
	}
	g.Expect(k8s.Create(ctx, job)).To(Succeed())

	g.Eventually(suspended(ns, job.Name), wait).Should(BeTrue())
	g.Eventually(func() []livev1.RecordingStatus { return getRoom(t, room).Status.Recordings }, wait).Should(ConsistOf(
		And(HaveField("Policy", gone), HaveField("Job", job.Name), HaveField("Phase", livev1.RecordingStopped))))
}
