package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	scheds := []storkv1.SnapshotSchedule{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
			Spec: storkv1.SnapshotScheduleSpec{Objectives: &storkv1.Objectives{RPO: dur(time.Hour), RTO: dur(30 * time.Minute)}},
			Status: storkv1.SnapshotScheduleStatus{NextScheduleTime: at(10 * time.Minute),
				Protection: &storkv1.Protection{LastBackupName: "db-20260301-1100", LastBackupCaptureTime: at(-65 * time.Minute), LastProvenRTO: dur(12 * time.Minute), LastProvenTime: at(-3 * time.Hour)},
				Conditions: []metav1.Condition{{Type: storkv1.ConditionRPOMet, Status: metav1.ConditionFalse, Reason: "RPOMissed"},
					{Type: storkv1.ConditionRTOMet, Status: metav1.ConditionTrue, Reason: "WithinRTO"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "analytics", Name: "nightly"}, Spec: storkv1.SnapshotScheduleSpec{Suspend: true}},
	}
	var out bytes.Buffer
	if err := printStatus(&out, scheds, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := [][]string{
		{"NAMESPACE", "SCHEDULE", "LAST BACKUP", "CAPTURED", "RPO", "RPO MET", "RTO", "PROVEN RTO", "RTO MET", "NEXT RUN", "LAST PROVEN"},
		{"analytics", "nightly", "-", "-", "-", "-", "-", "-", "-", "suspended", "-"},
		{"shop", "db", "db-20260301-1100", "65m ago", "1h0m0s", "NO (RPOMissed)", "30m0s", "12m0s", "yes", "in 10m", "3h ago"},
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, cols := range want {
		got := strings.Join(strings.Fields(lines[i]), " ")
		if w := strings.Join(strings.Fields(strings.Join(cols, " ")), " "); got != w {
			t.Errorf("line %d: %q, want %q", i, got, w)
		}
	}
}
