package caches

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// replicaLabel marks the callback-server replicas' Leases (apps.ReplicaLabel; this
// package cannot import internal/apps, which imports the resync).
const replicaLabel = "live.liveroom.io/callback-replica"

// WithReplicaLeases adds to the controller's cache options the Leases of the
// callback-server replicas in the operator's namespace, and no other Lease: the
// controller may list and watch Leases there only. (Secrets are never cached: the
// controller GETs the few it reads.)
func WithReplicaLeases(opts cache.Options, namespace string) cache.Options {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.ByObject[&coordinationv1.Lease{}] = cache.ByObject{
		Namespaces: map[string]cache.Config{namespace: {}},
		Label:      replicaLeases,
	}
	return opts
}

var replicaLeases = func() labels.Selector {
	req, err := labels.NewRequirement(replicaLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}()
