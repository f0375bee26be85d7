package caches

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// replicaLabel marks the callback-server replicas' Leases and projectionLabel the apps'
// projection Secrets (apps.ReplicaLabel and apps.ProjectionAppLabel; this package cannot
// import internal/apps, which imports the resync).
const (
	replicaLabel    = "live.liveroom.io/callback-replica"
	projectionLabel = "live.liveroom.io/app-uid"
)

// WithProjections adds to a cache's options the projection Secrets of the operator's
// namespace, through which the controller hands the callback server each app's tokens,
// and no other Secret: the callback server may read Secrets there only, and a cache of
// every Secret would hold credentials it has no use for.
func WithProjections(opts cache.Options, namespace string) cache.Options {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.ByObject[&corev1.Secret{}] = cache.ByObject{
		Namespaces: map[string]cache.Config{namespace: {}},
		Label:      projections,
	}
	return opts
}

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

var (
	replicaLeases = hasLabel(replicaLabel)
	projections   = hasLabel(projectionLabel)
)

func hasLabel(key string) labels.Selector {
	req, err := labels.NewRequirement(key, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}
