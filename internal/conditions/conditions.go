// Package conditions holds the status helpers every Stork controller uses: setting a
// metav1.Condition from a verdict, and emitting an Event when a recorder is configured.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
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
