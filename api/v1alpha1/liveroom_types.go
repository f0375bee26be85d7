package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations the operator sets on LiveRooms and on the objects it creates.
const (
	// OriginAnnotation says who created a LiveRoom: OriginCallback, OriginResync, or
	// absent for a declared room, which is desired state managed by a person or GitOps.
	OriginAnnotation = "live.liveroom.io/origin"
	OriginCallback   = "callback"
	OriginResync     = "resync"

	// RoomTypeLabel and OwnerLabel make rooms selectable by RecordingPolicies.
	RoomTypeLabel = "live.liveroom.io/room-type"
	OwnerLabel    = "live.liveroom.io/owner"
	// CategoryLabelPrefix is followed by the category number: category.live.liveroom.io/<n>.
	CategoryLabelPrefix = "category.live.liveroom.io/"

	// RoomLabel and PolicyLabel mark recording Jobs with the LiveRoom and RecordingPolicy
	// they belong to.
	RoomLabel   = "live.liveroom.io/room"
	PolicyLabel = "live.liveroom.io/policy"

	// RoomFinalizer guards declared rooms so that deleting one destroys it in Tencent first.
	RoomFinalizer = "live.liveroom.io/tencent-room"
)

// Condition types used by LiveRoom and RecordingPolicy.
const (
	// ConditionReady is the summary health read by kstatus, Argo CD and Flux.
	ConditionReady = "Ready"
	// ConditionRecording is true while any recording Job of the room runs.
	ConditionRecording = "Recording"
	// ConditionReconciling is true while the operator is still converging the object.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is true when the operator cannot make progress without a change
	// to the object (an invalid template, a RoomId taken by another owner).
	ConditionStalled = "Stalled"
	// ConditionSynced says whether Tencent matches the spec of a declared room.
	ConditionSynced = "Synced"
)

// SeatMode is how members take seats.
// +kubebuilder:validation:Enum=None;FreeToTake;ApplyToTake
type SeatMode string

// Seat modes, Tencent's SeatMode values.
const (
	// SeatModeNone: the room has no seats.
	SeatModeNone SeatMode = "None"
	// SeatModeFreeToTake: members take a free seat without asking.
	SeatModeFreeToTake SeatMode = "FreeToTake"
	// SeatModeApplyToTake: members ask the owner or an admin for a seat.
	SeatModeApplyToTake SeatMode = "ApplyToTake"
)

// DeletionPolicy says what deleting a declared LiveRoom does to the room in Tencent.
// +kubebuilder:validation:Enum=Destroy;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDestroy destroys the room in Tencent before the object goes away.
	DeletionPolicyDestroy DeletionPolicy = "Destroy"
	// DeletionPolicyOrphan leaves the room running in Tencent.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// RoomPhase is where a room is in its life.
// +kubebuilder:validation:Enum=Live;Ended
type RoomPhase string

// Room phases.
const (
	// RoomPhaseLive: the room exists in Tencent.
	RoomPhaseLive RoomPhase = "Live"
	// RoomPhaseEnded: the room was destroyed, or Tencent no longer has it.
	RoomPhaseEnded RoomPhase = "Ended"
)

// EndReason says why a room ended.
// +kubebuilder:validation:Enum=DestroyByUser;DestroyBySystem;NotFoundInTencent
type EndReason string

// End reasons.
const (
	// EndReasonDestroyByUser: the owner or the app's backend destroyed the room.
	EndReasonDestroyByUser EndReason = "DestroyByUser"
	// EndReasonDestroyBySystem: Tencent dissolved the room (empty, or its owner gone).
	EndReasonDestroyBySystem EndReason = "DestroyBySystem"
	// EndReasonNotFoundInTencent: a resync found the room gone from Tencent.
	EndReasonNotFoundInTencent EndReason = "NotFoundInTencent"
)

// SeatSpec holds the seat settings of a room.
type SeatSpec struct {
	// enabled says whether the room has seats.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// mode is how members take seats.
	// +optional
	Mode SeatMode `json:"mode,omitempty"`

	// max is the number of seats. Tencent bounds it by the app's package (16 in the
	// packages documented); a room reports at most 256 seats in its status.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=256
	// +optional
	Max int32 `json:"max,omitempty"`
}

// RecordingSpec holds a room's recording choices.
type RecordingSpec struct {
	// disabled opts the room out of every RecordingPolicy.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// LiveRoomSpec is what the room should be. For rooms discovered through callbacks or the
// resync it mirrors what Tencent reported; for declared rooms it is pushed to Tencent.
type LiveRoomSpec struct {
	// roomId is Tencent's RoomId: 1 to 48 bytes of printable ASCII. Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=48
	// +kubebuilder:validation:Pattern=`^[ -~]+$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="roomId is immutable"
	// +required
	RoomID string `json:"roomId"`

	// sdkAppId is the Tencent application the room belongs to. Immutable.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="sdkAppId is immutable"
	// +required
	SDKAppID int64 `json:"sdkAppId"`

	// roomName is the display name, at most 100 bytes; Tencent defaults it to the RoomId.
	// +kubebuilder:validation:MaxLength=100
	// +optional
	RoomName string `json:"roomName,omitempty"`

	// roomType is Tencent's room type.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:default=Live
	// +optional
	RoomType string `json:"roomType,omitempty"`

	// owner is the host's UserID (at most 32 bytes); Tencent defaults it to the admin
	// account that creates the room.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	Owner string `json:"owner,omitempty"`

	// maxMemberCount bounds the audience; 0 means the package limit.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxMemberCount int32 `json:"maxMemberCount,omitempty"`

	// messageDisabled mutes text messages for everyone but the owner and admins.
	// +optional
	MessageDisabled bool `json:"messageDisabled,omitempty"`

	// customInfo is free-form data carried by room callbacks. Tencent publishes no limit
	// for Live rooms; 2048 bytes keeps objects small.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	CustomInfo string `json:"customInfo,omitempty"`

	// seats are the seat settings.
	// +optional
	Seats SeatSpec `json:"seats,omitzero"`

	// publicVisible lists the room in the room list; Tencent's default is true.
	// +optional
	PublicVisible *bool `json:"publicVisible,omitempty"`

	// coverURL is the cover image, at most 200 bytes.
	// +kubebuilder:validation:MaxLength=200
	// +optional
	CoverURL string `json:"coverURL,omitempty"`

	// backgroundURL is the background image, at most 200 bytes.
	// +kubebuilder:validation:MaxLength=200
	// +optional
	BackgroundURL string `json:"backgroundURL,omitempty"`

	// notice is the room notice, at most 100 bytes.
	// +kubebuilder:validation:MaxLength=100
	// +optional
	Notice string `json:"notice,omitempty"`

	// activityStatus is an app-defined status number.
	// +optional
	ActivityStatus int64 `json:"activityStatus,omitempty"`

	// categories are up to 3 app-defined category numbers; each becomes a label
	// category.live.liveroom.io/<n> for RecordingPolicy selectors.
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:validation:items:Minimum=0
	// +listType=atomic
	// +optional
	Categories []int64 `json:"categories,omitempty"`

	// deletionPolicy applies to declared rooms: Destroy removes the room from Tencent
	// when the object is deleted, Orphan leaves it running.
	// +kubebuilder:default=Destroy
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// recording holds the room's recording choices.
	// +optional
	Recording RecordingSpec `json:"recording,omitzero"`

	// metadata is the room's metadata, for declared rooms: pushed to Tencent with
	// set_room_metadata and del_room_metadata. Tencent's limits: at most 10 keys of at most
	// 50 bytes, values of at most 2 KB, 16 KB of values in all.
	// +kubebuilder:validation:MaxProperties=10
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 50 && size(self[k]) <= 2048)",message="metadata keys are at most 50 bytes and values at most 2048"
	// +kubebuilder:validation:XValidation:rule="self.map(k, size(self[k])).sum() <= 16384",message="metadata values are at most 16 KB in all"
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`
}

// SeatStatus is one seat as Tencent last reported it.
type SeatStatus struct {
	// index is the seat number.
	// +required
	Index int32 `json:"index"`
	// member is the seated UserID; empty when the seat is free.
	// +optional
	Member string `json:"member,omitempty"`
	// locked means the seat cannot be taken.
	// +optional
	Locked bool `json:"locked,omitempty"`
	// videoDisabled means video publishing on the seat is prohibited.
	// +optional
	VideoDisabled bool `json:"videoDisabled,omitempty"`
	// audioDisabled means audio publishing on the seat is prohibited.
	// +optional
	AudioDisabled bool `json:"audioDisabled,omitempty"`
}

// AudienceStatus counts the members in the room, from member-state callbacks.
type AudienceStatus struct {
	// online is the number of members online now.
	// +optional
	Online int64 `json:"online"`
	// peak is the highest online count seen.
	// +optional
	Peak int64 `json:"peak"`
	// writers are the latest count writes of the callback-server replicas.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=replica
	// +optional
	Writers []CountWrite `json:"writers,omitempty"`
}

// CountWrite marks one replica's latest write of the room's counts. Counts are deltas, so
// a replica that lost the answer to a write must learn whether it was stored before it
// sends the delta again: it reads its mark back.
type CountWrite struct {
	// replica is the callback-server instance, e.g. its pod name.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Replica string `json:"replica"`
	// sequence numbers the replica's writes.
	// +required
	Sequence int64 `json:"sequence"`
	// time is when the write was made; marks older than a few minutes are dropped.
	// +required
	Time metav1.Time `json:"time"`
}

// RoomStatistics are the final figures Tencent reports when a room is destroyed.
type RoomStatistics struct {
	// +optional
	TotalViewers int64 `json:"totalViewers"`
	// +optional
	TotalGiftsSent int64 `json:"totalGiftsSent"`
	// +optional
	TotalGiftCoins int64 `json:"totalGiftCoins"`
	// +optional
	TotalUniqueGiftSenders int64 `json:"totalUniqueGiftSenders"`
	// +optional
	TotalLikesReceived int64 `json:"totalLikesReceived"`
}

// EventTimes holds, per kind of room fact, the Tencent event time in Unix milliseconds
// last applied, so that an event delivered late never overwrites newer state.
type EventTimes struct {
	// +optional
	Settings int64 `json:"settings,omitempty"`
	// +optional
	Seats int64 `json:"seats,omitempty"`
	// +optional
	Owner int64 `json:"owner,omitempty"`
	// +optional
	Admins int64 `json:"admins,omitempty"`
	// metadataKeys holds, per metadata key set or deleted, the time of its newest change,
	// as adminAccounts does for admins.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	MetadataKeys map[string]int64 `json:"metadataKeys,omitempty"`
	// adminAccounts holds, per account added or removed as admin, the time of its newest
	// change, so that an add and a delete delivered out of order end as Tencent ordered
	// them. Removed accounts are kept for a while, up to MaxAdminTombstones.
	// +kubebuilder:validation:MaxProperties=512
	// +optional
	AdminAccounts map[string]int64 `json:"adminAccounts,omitempty"`
}

// MaxAdminTombstones bounds the removed admins whose removal time a room remembers.
const MaxAdminTombstones = 256

// RecordingPhase is the state of one recording Job.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;Stopped
type RecordingPhase string

// Recording phases, read from the recording Job.
const (
	// RecordingPending: the Job exists and no Pod of it runs yet.
	RecordingPending RecordingPhase = "Pending"
	// RecordingRunning: a Pod of the Job runs.
	RecordingRunning RecordingPhase = "Running"
	// RecordingSucceeded: the Job completed.
	RecordingSucceeded RecordingPhase = "Succeeded"
	// RecordingFailed: the Job failed.
	RecordingFailed RecordingPhase = "Failed"
	// RecordingStopped: the operator suspended the Job (its room ended, or no policy
	// selects the room any more).
	RecordingStopped RecordingPhase = "Stopped"
)

// RecordingStatus is the recording of the room by one RecordingPolicy.
type RecordingStatus struct {
	// policy is the RecordingPolicy's name.
	// +required
	Policy string `json:"policy"`
	// job is the recording Job's name.
	// +required
	Job string `json:"job"`
	// phase is read from the Job's status.
	// +required
	Phase RecordingPhase `json:"phase"`
	// startTime is when the Job started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the Job finished or was stopped.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// TencentRoomState is where a declared room stands in Tencent.
// +kubebuilder:validation:Enum=Created;Taken
type TencentRoomState string

const (
	// TencentRoomCreated means the operator created the room in Tencent, or found it
	// there with the same owner: deleting the object destroys it, unless deletionPolicy
	// is Orphan.
	TencentRoomCreated TencentRoomState = "Created"
	// TencentRoomTaken means Tencent refused to create the room because another owner
	// holds its RoomId: the operator leaves it alone, also when the object is deleted.
	TencentRoomTaken TencentRoomState = "Taken"
)

// TencentRoomStatus is what the operator knows of a declared room in Tencent. These are
// the facts its decisions rest on (create or update, destroy on delete or not), kept
// apart from the conditions, which only report them.
type TencentRoomStatus struct {
	// state is Created or Taken; empty until Tencent answered a create.
	// +optional
	State TencentRoomState `json:"state,omitempty"`
	// observedGeneration is the generation of the spec the state was found for: for
	// Created, the spec Tencent last accepted.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// metadataKeys are the spec.metadata keys the operator set in Tencent: a key removed
	// from the spec is deleted there, and keys others set in the room are left alone.
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=50
	// +listType=set
	// +optional
	MetadataKeys []string `json:"metadataKeys,omitempty"`
}

// LiveRoomStatus is what Tencent last reported about the room and what the operator did.
type LiveRoomStatus struct {
	// phase is Live while the room exists in Tencent and Ended after it was destroyed.
	// +optional
	Phase RoomPhase `json:"phase,omitempty"`

	// createTime is when Tencent created the room.
	// +optional
	CreateTime *metav1.Time `json:"createTime,omitempty"`

	// endTime is when the room ended.
	// +optional
	EndTime *metav1.Time `json:"endTime,omitempty"`

	// endReason says why the room ended.
	// +optional
	EndReason EndReason `json:"endReason,omitempty"`

	// lastEventTime is the time of the newest Tencent event applied to the room.
	// +optional
	LastEventTime *metav1.MicroTime `json:"lastEventTime,omitempty"`

	// eventTimes orders late events per kind of fact.
	// +optional
	EventTimes EventTimes `json:"eventTimes,omitzero"`

	// owner is the room owner as Tencent last reported it.
	// +optional
	Owner string `json:"owner,omitempty"`

	// admins are the room admins as Tencent last reported them.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Admins []string `json:"admins,omitempty"`

	// seats is the seat list from the last seat callback.
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=index
	// +optional
	Seats []SeatStatus `json:"seats,omitempty"`

	// occupiedSeats counts seats with a member.
	// +optional
	OccupiedSeats int32 `json:"occupiedSeats,omitempty"`

	// audience counts members, updated from member-state callbacks at most once a second.
	// +optional
	Audience AudienceStatus `json:"audience,omitzero"`

	// statistics are the final figures reported when the room was destroyed.
	// +optional
	Statistics *RoomStatistics `json:"statistics,omitempty"`

	// metadata is the room's metadata as Tencent last reported it (metadata callbacks).
	// +kubebuilder:validation:MaxProperties=10
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`

	// recordings are the room's recordings, one per RecordingPolicy that selected it.
	// +listType=map
	// +listMapKey=policy
	// +optional
	Recordings []RecordingStatus `json:"recordings,omitempty"`

	// tencent is, for declared rooms, where the room stands in Tencent.
	// +optional
	Tencent TencentRoomStatus `json:"tencent,omitzero"`

	// observedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Ready, Recording, Reconciling, Stalled and, for declared rooms, Synced.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LiveRoom is one Tencent Cloud Live room.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lr,categories=live
// +kubebuilder:selectablefield:JSONPath=`.spec.roomId`
// +kubebuilder:printcolumn:name="Room ID",type=string,JSONPath=`.spec.roomId`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Recording",type=string,JSONPath=`.status.conditions[?(@.type=="Recording")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.roomType`,priority=1
// +kubebuilder:printcolumn:name="Online",type=integer,JSONPath=`.status.audience.online`,priority=1
// +kubebuilder:printcolumn:name="Seats",type=integer,JSONPath=`.status.occupiedSeats`,priority=1
// +kubebuilder:printcolumn:name="Origin",type=string,JSONPath=`.metadata.annotations.live\.liveroom\.io/origin`,priority=1
// +kubebuilder:printcolumn:name="Ended",type=string,JSONPath=`.status.endReason`,priority=1
type LiveRoom struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// +required
	Spec LiveRoomSpec `json:"spec"`

	// +optional
	Status LiveRoomStatus `json:"status,omitzero"`
}

// LiveRoomList is a list of LiveRooms.
// +kubebuilder:object:root=true
type LiveRoomList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []LiveRoom `json:"items"`
}

// Origin reports who created the room: OriginCallback, OriginResync or "" (declared).
func (r *LiveRoom) Origin() string { return r.Annotations[OriginAnnotation] }

// Declared reports whether the room is desired state written by a person or GitOps tool.
func (r *LiveRoom) Declared() bool { return r.Origin() == "" }

func init() {
	knownTypes = append(knownTypes, &LiveRoom{}, &LiveRoomList{})
}
