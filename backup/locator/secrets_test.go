package locator

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// TestReadable: restores read a location that is Available, or that refuses only writes; never
// one that is unavailable otherwise, or not checked yet.
func TestReadable(t *testing.T) {
	readable := func(s metav1.ConditionStatus) []metav1.Condition {
		return []metav1.Condition{{Type: storkv1.ConditionReadable, Status: s, Reason: "WritesRefused"}}
	}
	cases := []struct {
		name  string
		phase storkv1.BackupLocationPhase
		conds []metav1.Condition
		want  bool
	}{
		{"available", storkv1.BackupLocationAvailable, nil, true},
		{"writes refused, reads work", storkv1.BackupLocationUnavailable, readable(metav1.ConditionTrue), true},
		{"unavailable", storkv1.BackupLocationUnavailable, nil, false},
		{"unavailable, readable false", storkv1.BackupLocationUnavailable, readable(metav1.ConditionFalse), false},
		{"not checked yet", "", nil, false},
	}
	for _, tc := range cases {
		loc := &storkv1.BackupLocation{Status: storkv1.BackupLocationStatus{Phase: tc.phase, Conditions: tc.conds}}
		if got := Readable(loc); got != tc.want {
			t.Errorf("%s: Readable %v, want %v", tc.name, got, tc.want)
		}
	}
}
