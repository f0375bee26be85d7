// Package conditions sets an object's status conditions the way kstatus (and so Argo CD
// and Flux) reads them: Ready is the summary; Stalled (no progress without a change to the
// object) and Reconciling (work in progress) are present only while true, and either one
// makes Ready False. Reconcilers say what they observed; the rules are kept here, once.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of the kstatus summary.
const (
	Ready       = "Ready"
	Reconciling = "Reconciling"
	Stalled     = "Stalled"
)

// Set edits the conditions of one object observed at one generation.
type Set struct {
	list       *[]metav1.Condition
	generation int64
}

// For edits *list for an object at generation.
func For(list *[]metav1.Condition, generation int64) Set {
	return Set{list: list, generation: generation}
}

// Mark sets condition typ; use it for conditions other than the summary ones.
func (s Set) Mark(typ string, status bool, reason, message string) {
	cs := metav1.ConditionFalse
	if status {
		cs = metav1.ConditionTrue
	}
	s.set(typ, cs, reason, message)
}

func (s Set) set(typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(s.list, metav1.Condition{Type: typ, Status: status, ObservedGeneration: s.generation, Reason: reason, Message: message})
}

// MarkUnknown sets condition typ to Unknown: the operator does not, or cannot, observe
// what it reports. Not for the summary conditions, which are always known.
func (s Set) MarkUnknown(typ, reason, message string) {
	s.set(typ, metav1.ConditionUnknown, reason, message)
}

// MarkReady says the object is as its spec asks.
func (s Set) MarkReady(reason, message string) {
	s.Mark(Ready, true, reason, message)
	meta.RemoveStatusCondition(s.list, Reconciling)
	meta.RemoveStatusCondition(s.list, Stalled)
}

// MarkReconciling says work is under way (or being retried after an error): Ready is
// False with the same reason and message.
func (s Set) MarkReconciling(reason, message string) {
	s.Mark(Reconciling, true, reason, message)
	s.Mark(Ready, false, reason, message)
	meta.RemoveStatusCondition(s.list, Stalled)
}

// MarkStalled says no progress is possible until the object changes: Ready is False with
// the same reason and message, and nothing is reconciling.
func (s Set) MarkStalled(reason, message string) {
	s.Mark(Stalled, true, reason, message)
	s.Mark(Ready, false, reason, message)
	meta.RemoveStatusCondition(s.list, Reconciling)
}

// IsStalled reports whether list says the object at generation is stalled.
func IsStalled(list []metav1.Condition, generation int64) bool {
	c := meta.FindStatusCondition(list, Stalled)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation
}
