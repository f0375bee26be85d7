package controllers

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/conditions"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
)

// Environment variables every recording container gets.
const (
	EnvRoomID   = "LIVEROOM_ROOM_ID"
	EnvSDKAppID = "LIVEROOM_SDK_APP_ID"
	EnvOwner    = "LIVEROOM_OWNER"
	EnvRoomName = "LIVEROOM_ROOM_NAME"
)

// policySelector returns the policy's room selector; a nil selector selects every room.
func policySelector(p *livev1.RecordingPolicy) (labels.Selector, error) {
	if p.Spec.RoomSelector == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(p.Spec.RoomSelector)
}

// policyUsable reports whether a policy may start recordings: not suspended, and not
// found invalid by the RecordingPolicy controller for its current generation.
func policyUsable(p *livev1.RecordingPolicy) bool {
	if p.Spec.Suspend || !p.DeletionTimestamp.IsZero() {
		return false
	}
	return !conditions.IsStalled(p.Status.Conditions, p.Generation)
}

// wantsRecording reports whether room should be recorded by policy now.
func wantsRecording(room *livev1.LiveRoom, p *livev1.RecordingPolicy) bool {
	if room.Status.Phase != livev1.RoomPhaseLive || room.Spec.Recording.Disabled || !room.DeletionTimestamp.IsZero() || !policyUsable(p) {
		return false
	}
	sel, err := policySelector(p)
	return err == nil && sel.Matches(labels.Set(room.Labels))
}

// recordingJob builds the Job that records room for policy: the policy's template with
// the room's facts in every container's environment, owned by the room so that it goes
// when the room goes.
func recordingJob(room *livev1.LiveRoom, p *livev1.RecordingPolicy, scheme *runtime.Scheme) (*batchv1.Job, error) {
	tmpl := p.Spec.JobTemplate.DeepCopy()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        naming.JobName(room.Name, p.Name),
			Namespace:   room.Namespace,
			Labels:      mergeLabels(tmpl.Labels, jobLabels(room.Name, p.Name)),
			Annotations: mergeLabels(tmpl.Annotations, map[string]string{livev1.PolicyLabel: p.Name}),
		},
		Spec: tmpl.Spec,
	}
	job.Spec.Template.Labels = mergeLabels(job.Spec.Template.Labels, jobLabels(room.Name, p.Name))
	env := []corev1.EnvVar{
		{Name: EnvRoomID, Value: room.Spec.RoomID},
		{Name: EnvSDKAppID, Value: formatInt(room.Spec.SDKAppID)},
		{Name: EnvOwner, Value: room.Spec.Owner},
		{Name: EnvRoomName, Value: room.Spec.RoomName},
	}
	pod := &job.Spec.Template.Spec
	for _, containers := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for i := range containers {
			containers[i].Env = withEnv(containers[i].Env, env)
		}
	}
	if err := controllerutil.SetControllerReference(room, job, scheme); err != nil {
		return nil, err
	}
	return job, nil
}

// jobLabels mark a recording Job and its pods with their room and policy.
func jobLabels(room, policy string) map[string]string {
	return map[string]string{
		livev1.RoomLabel:   naming.LabelValue(room),
		livev1.PolicyLabel: policyKey(policy),
	}
}

// policyKey is the policy label value of a policy's Jobs.
func policyKey(policy string) string { return naming.LabelValue(policy) }

func mergeLabels(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// withEnv sets env on top of a container's own variables, replacing any of the same name.
func withEnv(own, env []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(own)+len(env))
	for _, e := range own {
		replaced := false
		for _, n := range env {
			replaced = replaced || n.Name == e.Name
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return append(out, env...)
}

// recordingPhase reads a recording's phase from its Job.
func recordingPhase(job *batchv1.Job) livev1.RecordingPhase {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobSuccessCriteriaMet:
			return livev1.RecordingSucceeded
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			return livev1.RecordingFailed
		}
	}
	switch {
	case job.Spec.Suspend != nil && *job.Spec.Suspend:
		return livev1.RecordingStopped
	case job.Status.Active > 0:
		return livev1.RecordingRunning
	}
	return livev1.RecordingPending
}

// jobPolicy is the name of the policy a recording Job belongs to.
func jobPolicy(job *batchv1.Job) string {
	if name := job.Annotations[livev1.PolicyLabel]; name != "" {
		return name
	}
	return job.Labels[livev1.PolicyLabel]
}

// finished reports whether a recording can no longer change.
func finished(phase livev1.RecordingPhase) bool {
	return phase == livev1.RecordingSucceeded || phase == livev1.RecordingFailed
}

// recordingStatus is the room's view of one recording Job. A stopped recording ends when
// the Job was suspended; a finished one when the Job completed or failed.
func recordingStatus(job *batchv1.Job) livev1.RecordingStatus {
	rs := livev1.RecordingStatus{
		Policy:    jobPolicy(job),
		Job:       job.Name,
		Phase:     recordingPhase(job),
		StartTime: job.Status.StartTime,
	}
	var endedBy batchv1.JobConditionType
	switch rs.Phase {
	case livev1.RecordingSucceeded:
		rs.CompletionTime = job.Status.CompletionTime
	case livev1.RecordingFailed:
		endedBy = batchv1.JobFailed
	case livev1.RecordingStopped:
		endedBy = batchv1.JobSuspended
	}
	for _, c := range job.Status.Conditions {
		if c.Type == endedBy && c.Status == corev1.ConditionTrue {
			rs.CompletionTime = &c.LastTransitionTime
		}
	}
	return rs
}

// validateTemplate checks what the API server cannot check until a Job is created.
func validateTemplate(p *livev1.RecordingPolicy) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("spec", "jobTemplate", "spec", "template", "spec")
	pod := p.Spec.JobTemplate.Spec.Template.Spec
	if len(pod.Containers) == 0 {
		errs = append(errs, field.Required(path.Child("containers"), "a recording needs at least one container"))
	}
	if rp := pod.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
		errs = append(errs, field.NotSupported(path.Child("restartPolicy"), rp, []corev1.RestartPolicy{corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure}))
	}
	return errs
}
