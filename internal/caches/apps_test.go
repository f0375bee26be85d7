package caches_test

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/liveroom-io/liveroom-operator/internal/apps"
	"github.com/liveroom-io/liveroom-operator/internal/caches"
)

func TestReplicaLeasesOnlyInTheOperatorNamespace(t *testing.T) {
	opts := caches.WithReplicaLeases(caches.Controller(), "operator")
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*coordinationv1.Lease); !ok {
			continue
		}
		if !by.Label.Matches(labels.Set{apps.ReplicaLabel: "pod-a"}) || by.Label.Matches(labels.Set{"other": "x"}) {
			t.Errorf("selector %s", by.Label)
		}
		if _, ok := by.Namespaces["operator"]; !ok || len(by.Namespaces) != 1 {
			t.Errorf("namespaces %v", by.Namespaces)
		}
		return
	}
	t.Fatal("no Lease entry")
}

// The callback server caches the projection Secrets of the operator's namespace and no
// other Secret.
func TestCallbackServerCachesProjectionsOnly(t *testing.T) {
	opts := caches.CallbackServer("operator")
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*corev1.Secret); !ok {
			continue
		}
		if !by.Label.Matches(labels.Set{apps.ProjectionAppLabel: "uid"}) || by.Label.Matches(labels.Set{"other": "x"}) {
			t.Errorf("selector %s", by.Label)
		}
		if _, ok := by.Namespaces["operator"]; !ok || len(by.Namespaces) != 1 {
			t.Errorf("namespaces %v", by.Namespaces)
		}
		return
	}
	t.Fatal("no Secret entry: the cache would hold every Secret")
}
