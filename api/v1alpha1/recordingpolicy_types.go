package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RecordingPolicySpec selects LiveRooms and says how to record them.
type RecordingPolicySpec struct {
	// roomSelector selects LiveRooms in the policy's namespace by label; empty selects all.
	// Rooms carry live.liveroom.io/room-type, live.liveroom.io/owner and
	// category.live.liveroom.io/<n> labels.
	// +optional
	RoomSelector *metav1.LabelSelector `json:"roomSelector,omitempty"`

	// jobTemplate is the recording Job created for each selected live room. The room's
	// facts are injected into every container as LIVEROOM_ROOM_ID, LIVEROOM_SDK_APP_ID,
	// LIVEROOM_OWNER and LIVEROOM_ROOM_NAME. A change to the template applies to
	// recordings that start after it; running recordings keep the template they started with.
	// +required
	JobTemplate batchv1.JobTemplateSpec `json:"jobTemplate"`

	// suspend stops the policy's running recordings (their Jobs are suspended, not
	// deleted) and starts no new ones.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// RecordingPolicyStatus reports what the policy selects and its recordings.
type RecordingPolicyStatus struct {
	// matchedRooms counts the LiveRooms the selector matches, live or not.
	// +optional
	MatchedRooms int32 `json:"matchedRooms"`
	// activeRecordings counts the policy's Jobs that run or wait to run.
	// +optional
	ActiveRecordings int32 `json:"activeRecordings"`
	// succeededRecordings counts the policy's Jobs that completed.
	// +optional
	SucceededRecordings int32 `json:"succeededRecordings"`
	// failedRecordings counts the policy's Jobs that failed.
	// +optional
	FailedRecordings int32 `json:"failedRecordings"`
	// stoppedRecordings counts the policy's Jobs that were stopped (suspended).
	// +optional
	StoppedRecordings int32 `json:"stoppedRecordings"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Ready, Reconciling and Stalled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RecordingPolicy runs one recording Job for every live room it selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rp,categories=live
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matchedRooms`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.activeRecordings`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`,priority=1
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeededRecordings`,priority=1
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failedRecordings`,priority=1
type RecordingPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// +required
	Spec RecordingPolicySpec `json:"spec"`

	// +optional
	Status RecordingPolicyStatus `json:"status,omitzero"`
}

// RecordingPolicyList is a list of RecordingPolicies.
// +kubebuilder:object:root=true
type RecordingPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []RecordingPolicy `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &RecordingPolicy{}, &RecordingPolicyList{})
}
