// Package v1alpha1 contains the live.liveroom.io/v1alpha1 API: LiveApp, LiveRoom and
// RecordingPolicy.
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=live.liveroom.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "live.liveroom.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion by the name the generated apply configurations use.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the kinds of this API with a scheme. It depends on
	// apimachinery alone, so that clients can import the API without controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme

	// knownTypes are the kinds' objects, registered by each kind's file.
	knownTypes []runtime.Object
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, knownTypes...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
