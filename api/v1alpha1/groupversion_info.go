// Package v1alpha1 contains the live.liveroom.io/v1alpha1 API: LiveRoom and RecordingPolicy.
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=live.liveroom.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "live.liveroom.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion by the name the generated apply configurations use.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the kinds of this API with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
