package conditions

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Set sets the condition of type t: True when ok, with the reason and message, for the object's
// generation. The transition time changes only when the status does.
func Set(conds *[]metav1.Condition, generation int64, t string, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation})
}

// Event emits an Event about obj (kind is corev1.EventTypeNormal or Warning; action what the
// controller was doing). Without a recorder (unit tests) it does nothing.
func Event(rec events.EventRecorder, obj runtime.Object, action, kind, reason, msg string) {
	if rec != nil {
		rec.Eventf(obj, nil, kind, reason, action, "%s", msg)
	}
}

// Finish records the end of an object's work: Progressing False, Ready True when ok, and an
// Event (Normal when ok, else Warning) with eventReason and the message.
func Finish(conds *[]metav1.Condition, generation int64, rec events.EventRecorder, obj runtime.Object, action string, ok bool, reason, eventReason, msg string) {
	Set(conds, generation, storkv1.ConditionProgressing, false, reason, "finished")
	Set(conds, generation, storkv1.ConditionReady, ok, reason, msg)
	kind := corev1.EventTypeNormal
	if !ok {
		kind = corev1.EventTypeWarning
	}
	Event(rec, obj, action, kind, eventReason, msg)
}
