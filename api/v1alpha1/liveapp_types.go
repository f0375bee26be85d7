package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of LiveApp besides Ready, Reconciling and Stalled.
const (
	// ConditionCallbackConfigured says whether Tencent calls the operator: the callback
	// URL, commands and token it holds are the ones the app needs.
	ConditionCallbackConfigured = "CallbackConfigured"
	// ConditionQuotaNearLimit is true while the app is close to its room quota, as
	// Tencent's Live.CallbackAfterCreateRoomReachingThreshold reported.
	ConditionQuotaNearLimit = "QuotaNearLimit"
)

// AppFinalizer guards a LiveApp so that deleting it removes what the operator made for it
// (and Tencent's callback configuration, when the spec asks).
const AppFinalizer = "live.liveroom.io/app"

// SecretKeyRef names one key of a Secret in the LiveApp's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// LiveAppAPI says how the operator calls the app's REST API.
type LiveAppAPI struct {
	// host is the REST API host of the app's region, scheme included.
	// +kubebuilder:default="https://adminapisgp.im.qcloud.com"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^https?://[^/?#@]+/?$`
	// +optional
	Host string `json:"host,omitempty"`
	// adminUser is the app administrator the API is called as; the operator computes its
	// UserSig from the secret key.
	// +kubebuilder:default=administrator
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +optional
	AdminUser string `json:"adminUser,omitempty"`
	// secretKeyRef is the app's secret key. Without it the app is callback-only: no
	// resync, declared rooms are not created in Tencent, and Tencent's callback
	// configuration is not managed.
	// +optional
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// CallbackDeletionPolicy says what deleting a LiveApp does to Tencent's callback
// configuration.
// +kubebuilder:validation:Enum=Keep;Remove
type CallbackDeletionPolicy string

const (
	// CallbackDeletionKeep leaves Tencent's callback configuration as it is.
	CallbackDeletionKeep CallbackDeletionPolicy = "Keep"
	// CallbackDeletionRemove deletes it (delete_callback), so Tencent stops calling.
	CallbackDeletionRemove CallbackDeletionPolicy = "Remove"
)

// LiveAppCallback says where Tencent sends the app's callbacks and how they are
// authenticated.
// +kubebuilder:validation:XValidation:rule="!has(self.manage) || !self.manage || has(self.url)",message="callback.manage needs callback.url, the URL Tencent is to call"
// +kubebuilder:validation:XValidation:rule="!has(self.manage) || !self.manage || !has(self.tokensSecretRef)",message="callback.tokensSecretRef is for tokens the operator does not manage"
type LiveAppCallback struct {
	// url is the public URL Tencent calls: your Ingress in front of the
	// liveroom-callback Service, path /callback.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^https?://[^?#]+$`
	// +optional
	URL string `json:"url,omitempty"`
	// manage lets the operator configure Tencent itself: the callback URL and commands
	// (set_callback or update_callback, drift corrected) and a callback token it
	// generates, keeps in a Secret of this namespace and rotates (set_callback_token).
	// Needs api.secretKeyRef.
	// +optional
	Manage bool `json:"manage,omitempty"`
	// extraCommands are callback commands the app's own backend needs (forwarded to it),
	// on top of the room commands the operator subscribes to.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=set
	// +optional
	ExtraCommands []string `json:"extraCommands,omitempty"`
	// tokenRotationPeriod is how often a managed token is replaced; "0s" never.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="tokenRotationPeriod must not be negative (0s: never)"
	// +optional
	TokenRotationPeriod *metav1.Duration `json:"tokenRotationPeriod,omitempty"`
	// tokensSecretRef holds the callback tokens (one per line; during a rotation the old
	// and the new one) when the operator does not manage them.
	// +optional
	TokensSecretRef *SecretKeyRef `json:"tokensSecretRef,omitempty"`
	// allowUnsigned accepts callbacks without a Sign while the app has no token. Anyone who
	// knows the URL can then write rooms: for trials only.
	// +optional
	AllowUnsigned bool `json:"allowUnsigned,omitempty"`
	// maxSkew is the accepted distance between a callback's RequestTime and now, at most
	// 1h (Tencent's own window is 1m; a longer one lets a captured signed URL be replayed
	// for longer).
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="maxSkew must be more than 0s and at most 1h"
	// +optional
	MaxSkew *metav1.Duration `json:"maxSkew,omitempty"`
	// deletionPolicy says what deleting the LiveApp does to Tencent's callback
	// configuration (managed apps only).
	// +kubebuilder:default=Keep
	// +optional
	DeletionPolicy CallbackDeletionPolicy `json:"deletionPolicy,omitempty"`
}

// LiveAppRooms says how the app's rooms are kept.
type LiveAppRooms struct {
	// endedRoomTTL is how long an ended room found by callback or resync is kept; "0s"
	// keeps it until deleted by hand.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="endedRoomTTL must not be negative"
	// +optional
	EndedRoomTTL *metav1.Duration `json:"endedRoomTTL,omitempty"`
	// resyncInterval is how often the rooms are compared with Tencent's room list (needs
	// api.secretKeyRef), from the start of one resync to the next; listing 10,000 rooms
	// takes about a minute at Tencent's rate limit.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="resyncInterval must be at least 1s"
	// +optional
	ResyncInterval *metav1.Duration `json:"resyncInterval,omitempty"`
}

// ForwardFailPolicy is the answer to a blocking callback the app's backend cannot give.
// +kubebuilder:validation:Enum=allow;deny
type ForwardFailPolicy string

// LiveAppForward passes every accepted callback on to the app's own backend: Tencent
// calls one URL per app, the operator's.
type LiveAppForward struct {
	// url is the backend's callback endpoint; Tencent's query string is appended.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^https?://[^@?#]+(\?[^#]*)?$`
	// +required
	URL string `json:"url"`
	// authorizationSecretRef holds the value of an Authorization header sent with every
	// delivery (e.g. "Bearer ...").
	// +optional
	AuthorizationSecretRef *SecretKeyRef `json:"authorizationSecretRef,omitempty"`
	// timeout bounds one delivery.
	// +kubebuilder:default="1500ms"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="forward.timeout must be more than 0s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// failPolicy answers a blocking callback the backend cannot answer in time: allow
	// (ErrorCode 0) or deny (ErrorCode 1).
	// +kubebuilder:default=allow
	// +optional
	FailPolicy ForwardFailPolicy `json:"failPolicy,omitempty"`
}

// LiveAppSpec is one Tencent Cloud Live application. Its rooms live in the LiveApp's
// namespace; a namespace holds one LiveApp.
// +kubebuilder:validation:XValidation:rule="!has(self.callback) || !has(self.callback.manage) || !self.callback.manage || (has(self.api) && has(self.api.secretKeyRef))",message="callback.manage needs api.secretKeyRef"
type LiveAppSpec struct {
	// sdkAppId is the Tencent application. Immutable.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="sdkAppId is immutable"
	// +required
	SDKAppID int64 `json:"sdkAppId"`
	// api says how the operator calls the app's REST API.
	// +optional
	API LiveAppAPI `json:"api,omitzero"`
	// callback says where Tencent calls and how callbacks are authenticated.
	// +optional
	Callback LiveAppCallback `json:"callback,omitzero"`
	// rooms says how the app's rooms are kept.
	// +optional
	Rooms LiveAppRooms `json:"rooms,omitzero"`
	// forward passes accepted callbacks on to the app's own backend.
	// +optional
	Forward *LiveAppForward `json:"forward,omitempty"`
}

// TencentCallbackStatus is the callback configuration Tencent holds (get_callback).
type TencentCallbackStatus struct {
	// url Tencent calls.
	// +optional
	URL string `json:"url,omitempty"`
	// commands Tencent calls it for.
	// +listType=set
	// +optional
	Commands []string `json:"commands,omitempty"`
}

// RoomQuotaStatus is Tencent's last warning that the app is close to its room quota.
type RoomQuotaStatus struct {
	// rooms is the number of rooms when Tencent warned.
	// +optional
	Rooms int64 `json:"rooms"`
	// maxRooms is the app's quota.
	// +optional
	MaxRooms int64 `json:"maxRooms"`
	// reportedAt is when the warning came.
	// +required
	ReportedAt metav1.Time `json:"reportedAt"`
}

// LiveAppStatus is what the operator found and did for the app.
type LiveAppStatus struct {
	// callback is what Tencent holds, as get_callback last reported it (managed apps).
	// +optional
	Callback *TencentCallbackStatus `json:"callback,omitempty"`
	// tokenRotatedAt is when Tencent was last switched to a new callback token.
	// +optional
	TokenRotatedAt *metav1.Time `json:"tokenRotatedAt,omitempty"`
	// tokenSecretName is the Secret, in this namespace, where the operator keeps the
	// managed callback token, for the app's backend to check the Sign of what it is
	// forwarded.
	// +optional
	TokenSecretName string `json:"tokenSecretName,omitempty"`
	// roomQuota is Tencent's last warning that the app nears its room quota.
	// +optional
	RoomQuota *RoomQuotaStatus `json:"roomQuota,omitempty"`
	// observedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions are Ready, Reconciling, Stalled, CallbackConfigured and QuotaNearLimit.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LiveApp is one Tencent Cloud Live application served by the operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=la,categories=live
// +kubebuilder:printcolumn:name="SDKAppID",type=integer,JSONPath=`.spec.sdkAppId`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.callback.url`
// +kubebuilder:printcolumn:name="Callbacks",type=string,JSONPath=`.status.conditions[?(@.type=="CallbackConfigured")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LiveApp struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// +required
	Spec LiveAppSpec `json:"spec"`

	// +optional
	Status LiveAppStatus `json:"status,omitzero"`
}

// LiveAppList is a list of LiveApps.
// +kubebuilder:object:root=true
type LiveAppList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []LiveApp `json:"items"`
}

func init() {
	knownTypes = append(knownTypes, &LiveApp{}, &LiveAppList{})
}
