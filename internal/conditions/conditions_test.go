package conditions

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// kstatus computes what Argo CD and Flux show from the conditions each mark leaves.
func TestMarksReadAsKstatusExpects(t *testing.T) {
	cases := []struct {
		name string
		mark func(Set)
		want status.Status
	}{
		{"ready", func(s Set) { s.MarkReady("Reconciled", "ok") }, status.CurrentStatus},
		{"reconciling", func(s Set) { s.MarkReconciling("Retrying", "API down") }, status.InProgressStatus},
		{"stalled", func(s Set) { s.MarkStalled("InvalidSpec", "bad") }, status.FailedStatus},
		{"stalled after reconciling", func(s Set) { s.MarkReconciling("Retrying", "x"); s.MarkStalled("InvalidSpec", "bad") }, status.FailedStatus},
		{"ready after stalled", func(s Set) { s.MarkStalled("InvalidSpec", "bad"); s.MarkReady("Reconciled", "ok") }, status.CurrentStatus},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var list []metav1.Condition
			c.mark(For(&list, 3))
			obj := map[string]any{
				"apiVersion": "live.liveroom.io/v1alpha1", "kind": "LiveRoom",
				"metadata": map[string]any{"name": "r", "generation": int64(3)},
				"status":   map[string]any{"observedGeneration": int64(3), "conditions": toMaps(t, list)},
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: obj})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != c.want {
				t.Fatalf("kstatus %s (%s), want %s; conditions %+v", res.Status, res.Message, c.want, list)
			}
			ready := meta.FindStatusCondition(list, Ready)
			if ready == nil || ready.ObservedGeneration != 3 {
				t.Fatalf("Ready %+v", ready)
			}
			if meta.IsStatusConditionTrue(list, Stalled) && meta.IsStatusConditionTrue(list, Reconciling) {
				t.Fatal("Stalled and Reconciling both true")
			}
		})
	}
}

func toMaps(t *testing.T, list []metav1.Condition) []any {
	out := make([]any, len(list))
	for i := range list {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&list[i])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = m
	}
	return out
}
