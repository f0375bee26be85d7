package controllers

import (
	"context"
	"slices"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/naming"
)

// A room's recording Jobs are found by name, not through a cache index by owner: such an
// index holds a set per room, about as much memory as a cached Job. A recording Job is
// named after its room and policy (naming.JobName), so a room's Jobs are those named after
// it and a policy that exists or that any recording Job in the namespace was made from:
// the policies of deleted policies' Jobs are remembered from the Jobs themselves.

// roomJobs returns the room's recording Jobs by policy key.
func (r *LiveRoomReconciler) roomJobs(ctx context.Context, room *livev1.LiveRoom, policies []livev1.RecordingPolicy) (map[string]*batchv1.Job, error) {
	names := r.jobPolicies.in(room.Namespace)
	for i := range policies {
		names = append(names, policies[i].Name)
	}
	slices.Sort(names)
	jobs := map[string]*batchv1.Job{}
	for _, policy := range slices.Compact(names) {
		job := &batchv1.Job{}
		err := r.Get(ctx, client.ObjectKey{Namespace: room.Namespace, Name: naming.JobName(room.Name, policy)}, job)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		if roomOfJob(job) == room.Name {
			jobs[policyKey(policy)] = job
		}
	}
	return jobs, nil
}

// roomOfJob is the name of the LiveRoom that controls a Job, or "".
func roomOfJob(job client.Object) string {
	owner := metav1.GetControllerOfNoCopy(job)
	if owner == nil || owner.Kind != "LiveRoom" {
		return ""
	}
	if gv, err := schema.ParseGroupVersion(owner.APIVersion); err != nil || gv.Group != livev1.GroupVersion.Group {
		return ""
	}
	return owner.Name
}

// jobEvents wakes a Job's room when the Job changes or goes, and remembers the policy of
// every Job it sees. A new Job wakes its room only when its policy is gone, so that the
// room stops it: otherwise the reconcile that created it has recorded it already, and at
// start every room is reconciled anyway. (The Job may be in the cache an instant before
// its policy is remembered here; a policy gone by then is caught by the same rule.)
func (r *LiveRoomReconciler) jobEvents() handler.TypedEventHandler[client.Object, reconcile.Request] {
	wake := func(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if room := roomOfJob(o); room != "" {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: room}})
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			policy := jobPolicy(e.Object.(*batchv1.Job))
			r.jobPolicies.add(e.Object.GetNamespace(), policy)
			if !r.policyExists(ctx, e.Object.GetNamespace(), policy) {
				wake(e.Object, q)
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.jobPolicies.add(e.ObjectNew.GetNamespace(), jobPolicy(e.ObjectNew.(*batchv1.Job)))
			wake(e.ObjectOld, q)
			wake(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			wake(e.Object, q)
		},
	}
}

// policyExists reports whether the cache holds the policy; on errors it says it does not,
// which only costs a reconcile.
func (r *LiveRoomReconciler) policyExists(ctx context.Context, namespace, name string) bool {
	var p livev1.RecordingPolicy
	return r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &p, client.UnsafeDisableDeepCopy) == nil
}

// policyNames remembers policy names per namespace. It only grows: by one name per policy
// that ever had a recording Job while the manager ran.
type policyNames struct {
	mu          sync.Mutex
	byNamespace map[string]map[string]bool
}

func (p *policyNames) add(namespace, name string) {
	if name == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byNamespace == nil {
		p.byNamespace = map[string]map[string]bool{}
	}
	if p.byNamespace[namespace] == nil {
		p.byNamespace[namespace] = map[string]bool{}
	}
	p.byNamespace[namespace][name] = true
}

// in returns the names remembered in a namespace, in a slice of the caller's own.
func (p *policyNames) in(namespace string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.byNamespace[namespace]))
	for name := range p.byNamespace[namespace] {
		names = append(names, name)
	}
	return names
}
