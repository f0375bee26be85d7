package controllers

import (
	"context"
	"fmt"
	"reflect"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	livev1 "github.com/liveroom-io/liveroom-operator/api/v1alpha1"
	liveac "github.com/liveroom-io/liveroom-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"github.com/liveroom-io/liveroom-operator/internal/conditions"
)

// RecordingPolicyReconciler reports what each policy selects and how its recordings do,
// and checks its selector and Job template once per generation: an invalid one is marked
// Stalled (and the LiveRoom controller starts no Job from it) instead of failing forever.
type RecordingPolicyReconciler struct {
	client.Client
	Scheme *runtime.Scheme
}

// +kubebuilder:rbac:groups=live.liveroom.io,resources=recordingpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=live.liveroom.io,resources=recordingpolicies/status,verbs=get;patch

// Reconcile computes one policy's status.
func (r *RecordingPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p livev1.RecordingPolicy
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	invalid, err := r.validate(ctx, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	st := p.Status.DeepCopy()
	if err := r.count(ctx, &p, invalid == "", st); err != nil {
		return ctrl.Result{}, err
	}
	c := conditions.For(&st.Conditions, p.Generation)
	switch {
	case invalid != "":
		c.MarkStalled("InvalidSpec", invalid)
	case p.Spec.Suspend:
		c.MarkReady("Suspended", "Suspended: recordings are stopped and none start")
	default:
		c.MarkReady("Active", fmt.Sprintf("Selects %d room(s); %d recording(s) active", st.MatchedRooms, st.ActiveRecordings))
	}
	st.ObservedGeneration = p.Generation
	if equality.Semantic.DeepEqual(*st, p.Status) {
		return ctrl.Result{}, nil
	}
	ac := liveac.RecordingPolicy(p.Name, p.Namespace).WithStatus(policyStatusApply(st))
	return ctrl.Result{}, r.Status().Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership)
}

// count fills in the rooms the policy selects (when its selector is usable) and its
// recordings by phase. The cached objects are only read, not copied.
func (r *RecordingPolicyReconciler) count(ctx context.Context, p *livev1.RecordingPolicy, selectorUsable bool, st *livev1.RecordingPolicyStatus) error {
	st.MatchedRooms, st.ActiveRecordings, st.SucceededRecordings, st.FailedRecordings, st.StoppedRecordings = 0, 0, 0, 0, 0
	if selectorUsable {
		sel, _ := policySelector(p)
		var rooms livev1.LiveRoomList
		if err := r.List(ctx, &rooms, client.InNamespace(p.Namespace), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		st.MatchedRooms = int32(len(rooms.Items))
	}
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(p.Namespace),
		client.MatchingLabels{livev1.PolicyLabel: policyKey(p.Name)}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	for i := range jobs.Items {
		if jobPolicy(&jobs.Items[i]) != p.Name {
			continue
		}
		switch recordingPhase(&jobs.Items[i]) {
		case livev1.RecordingRunning, livev1.RecordingPending:
			st.ActiveRecordings++
		case livev1.RecordingSucceeded:
			st.SucceededRecordings++
		case livev1.RecordingFailed:
			st.FailedRecordings++
		case livev1.RecordingStopped:
			st.StoppedRecordings++
		}
	}
	return nil
}

// policyStatusApply is the typed apply of a policy's status.
func policyStatusApply(st *livev1.RecordingPolicyStatus) *liveac.RecordingPolicyStatusApplyConfiguration {
	return liveac.RecordingPolicyStatus().
		WithMatchedRooms(st.MatchedRooms).WithActiveRecordings(st.ActiveRecordings).
		WithSucceededRecordings(st.SucceededRecordings).WithFailedRecordings(st.FailedRecordings).
		WithStoppedRecordings(st.StoppedRecordings).WithObservedGeneration(st.ObservedGeneration).
		WithConditions(conditionsApply(st.Conditions)...)
}

// validate returns why the policy cannot record, or "". The template is checked by the
// API server itself with a dry-run create of a sample Job, once per generation.
func (r *RecordingPolicyReconciler) validate(ctx context.Context, p *livev1.RecordingPolicy) (string, error) {
	if _, err := policySelector(p); err != nil {
		return fmt.Sprintf("spec.roomSelector is invalid: %v", err), nil
	}
	if errs := validateTemplate(p); len(errs) > 0 {
		return errs.ToAggregate().Error(), nil
	}
	if p.Status.ObservedGeneration == p.Generation {
		if c := meta.FindStatusCondition(p.Status.Conditions, livev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			return c.Message, nil
		}
		return "", nil
	}
	sample := &livev1.LiveRoom{
		ObjectMeta: metav1.ObjectMeta{Name: "dry-run-room", Namespace: p.Namespace, UID: "00000000-0000-0000-0000-000000000000"},
		Spec:       livev1.LiveRoomSpec{RoomID: "dry-run-room", SDKAppID: 1},
	}
	sample.SetGroupVersionKind(livev1.GroupVersion.WithKind("LiveRoom"))
	job, err := recordingJob(sample, p, r.Scheme)
	if err != nil {
		return "", err
	}
	if err := r.Create(ctx, job, client.DryRunAll); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return fmt.Sprintf("spec.jobTemplate does not make a valid Job: %v", err), nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return "", err
		}
	}
	return "", nil
}

// SetupWithManager registers the reconciler; Job and LiveRoom changes refresh the counts
// of the policies they concern.
func (r *RecordingPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&livev1.RecordingPolicy{}).
		Watches(&batchv1.Job{}, recountAfter(func(_ context.Context, o client.Object) []reconcile.Request { return policyOfJob(o) })).
		Watches(&livev1.LiveRoom{}, recountAfter(r.policiesOfRoom), builder.WithPredicates(roomLabelsChanged)).
		Named("recordingpolicy").
		Complete(r)
}

// recountDelay gathers a burst of Job and room events into one recount per policy.
const recountDelay = time.Second

// recountAfter enqueues the policies that map returns for an object, recountDelay later:
// counts are eventually right either way, and thousands of rooms starting at once then
// cost a recount a second, not one per Job.
func recountAfter(mapFn func(context.Context, client.Object) []reconcile.Request) handler.TypedEventHandler[client.Object, reconcile.Request] {
	add := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range mapFn(ctx, o) {
			q.AddAfter(req, recountDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectOld, q)
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}

// roomLabelsChanged passes room updates that can change which policies select it.
var roomLabelsChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return !reflect.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
	},
}

func policyOfJob(o client.Object) []reconcile.Request {
	name := jobPolicy(o.(*batchv1.Job))
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
}

// policiesOfRoom enqueues the policies in the room's namespace that select it.
func (r *RecordingPolicyReconciler) policiesOfRoom(ctx context.Context, o client.Object) []reconcile.Request {
	var policies livev1.RecordingPolicyList
	if err := r.List(ctx, &policies, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range policies.Items {
		if sel, err := policySelector(&policies.Items[i]); err != nil || sel.Matches(labels.Set(o.GetLabels())) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&policies.Items[i])})
		}
	}
	return reqs
}
