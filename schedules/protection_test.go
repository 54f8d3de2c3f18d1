package schedules

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// The RPO counts from the newest Completed Backup's capture: RPOMet stays True until the
// deadline, turns False past it (with an Event, and a requeue timed for it), and True again
// when a newer backup completes. The RTO is not proven without a drill. The metrics follow.
func TestObjectives(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	spec := storkv1.SnapshotScheduleSpec{Schedule: "@every 10m", Suspend: true,
		Objectives: &storkv1.Objectives{RPO: &metav1.Duration{Duration: 15 * time.Minute}, RTO: &metav1.Duration{Duration: time.Hour}}}
	spec.Template.Spec.BackupLocation = "loc"
	h := newHarness(t, spec, t0)
	rec := events.NewFakeRecorder(100)
	h.r.Recorder, h.r.Metrics = rec, &Metrics{Clock: h.clock}

	check := func(s *storkv1.SnapshotSchedule, rpoStatus metav1.ConditionStatus, reason, deadline, backup string) {
		t.Helper()
		c := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRPOMet)
		if c == nil || c.Status != rpoStatus || c.Reason != reason {
			t.Fatalf("RPOMet %+v, want %s %s", c, rpoStatus, reason)
		}
		p := s.Status.Protection
		if p == nil || p.RPODeadline == nil || !p.RPODeadline.Time.Equal(mustTime(t, deadline)) || p.LastBackupName != backup {
			t.Fatalf("protection %+v, want deadline %s and backup %q", p, deadline, backup)
		}
		if rto := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRTOMet); rto == nil || rto.Status != metav1.ConditionUnknown || rto.Reason != "NotProven" {
			t.Fatalf("RTOMet %+v, want Unknown NotProven", rto)
		}
	}
	// No backup yet: the schedule has one RPO for its first.
	check(h.at(t0.Add(time.Minute)), metav1.ConditionTrue, "WithinRPO", "2026-03-01T00:15:00Z", "")
	h.createBackup(bk{name: "b1", phase: storkv1.BackupCompleted}, t0.Add(11*time.Minute))
	setCapture(t, h, "b1", t0.Add(10*time.Minute))
	h.createBackup(bk{name: "failed", phase: storkv1.BackupFailed}, t0.Add(21*time.Minute))
	check(h.at(t0.Add(20*time.Minute)), metav1.ConditionTrue, "WithinRPO", "2026-03-01T00:25:00Z", "b1")
	if evs := drain(rec); len(evs) != 0 {
		t.Errorf("events while the RPO is met: %v", evs)
	}
	// The requeue comes right after the deadline.
	res, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: h.key})
	if err != nil || res.RequeueAfter < 5*time.Minute || res.RequeueAfter > 5*time.Minute+time.Second {
		t.Fatalf("requeue after %v (%v), want just over 5m", res.RequeueAfter, err)
	}
	s := h.at(t0.Add(26 * time.Minute))
	check(s, metav1.ConditionFalse, "RPOMissed", "2026-03-01T00:25:00Z", "b1")
	if evs := drain(rec); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning RPOMissed") || !strings.Contains(evs[0], "16m0s ago: the RPO of 15m0s was missed") {
		t.Errorf("events when the RPO is missed: %v", evs)
	}
	want := `
# HELP stork_app_rpo_seconds Achieved recovery point: seconds since the newest Completed backup of the schedule's application was captured (since the schedule's creation if none).
# TYPE stork_app_rpo_seconds gauge
stork_app_rpo_seconds{namespace="app",schedule="nightly"} 960
# HELP stork_app_rpo_objective_seconds The schedule's declared RPO.
# TYPE stork_app_rpo_objective_seconds gauge
stork_app_rpo_objective_seconds{namespace="app",schedule="nightly"} 900
`
	if err := testutil.CollectAndCompare(h.r.Metrics, strings.NewReader(want), "stork_app_rpo_seconds", "stork_app_rpo_objective_seconds"); err != nil {
		t.Error(err)
	}
	h.createBackup(bk{name: "b2", phase: storkv1.BackupCompleted}, t0.Add(31*time.Minute))
	setCapture(t, h, "b2", t0.Add(30*time.Minute))
	check(h.at(t0.Add(32*time.Minute)), metav1.ConditionTrue, "WithinRPO", "2026-03-01T00:45:00Z", "b2")
	if evs := drain(rec); len(evs) != 1 || !strings.HasPrefix(evs[0], "Normal WithinRPO") {
		t.Errorf("events when the RPO is met again: %v", evs)
	}

	// Objectives removed: their conditions, status and metrics go.
	s = h.at(t0.Add(33 * time.Minute))
	s.Spec.Objectives = nil
	s.Generation++
	if err := h.c.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	s = h.at(t0.Add(34 * time.Minute))
	if s.Status.Protection != nil || meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRPOMet) != nil {
		t.Errorf("objectives removed, status still %+v", s.Status)
	}
	if n := testutil.CollectAndCount(h.r.Metrics); n != 0 {
		t.Errorf("%d metrics left", n)
	}
}

// A schedule whose runs are further apart than its RPO says so.
func TestObjectivesSparseSchedule(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	spec := storkv1.SnapshotScheduleSpec{Schedule: "0 2 * * *", Suspend: true, Objectives: &storkv1.Objectives{RPO: &metav1.Duration{Duration: time.Hour}}}
	spec.Template.Spec.BackupLocation = "loc"
	h := newHarness(t, spec, t0)
	s := h.at(t0.Add(time.Minute))
	if c := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRPOMet); c == nil || !strings.Contains(c.Message, "runs are 24h0m0s apart, longer than the RPO") {
		t.Errorf("RPOMet %+v", c)
	}
	if meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRTOMet) != nil {
		t.Error("RTOMet set without an RTO")
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// setCapture sets a Backup's capture-time annotation, as the Snapshot controller does.
func setCapture(t *testing.T, h *harness, name string, at time.Time) {
	t.Helper()
	b := &storkv1.Backup{}
	if err := h.c.Get(context.Background(), client.ObjectKey{Namespace: "app", Name: name}, b); err != nil {
		t.Fatal(err)
	}
	b.Annotations = map[string]string{storkv1.AnnotationCaptureTime: at.Format(time.RFC3339)}
	if err := h.c.Update(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// The throughput of the last Completed Restore of one of the schedule's backups, applied to
// the newest backup's size, warns when the RTO cannot be met.
func TestObjectivesRestoreTooSlow(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	spec := storkv1.SnapshotScheduleSpec{Schedule: "@every 10m", Suspend: true,
		Objectives: &storkv1.Objectives{RTO: &metav1.Duration{Duration: time.Hour}}}
	spec.Template.Spec.BackupLocation = "loc"
	h := newHarness(t, spec, t0)
	rec := events.NewFakeRecorder(100)
	h.r.Recorder = rec
	ctx := context.Background()
	for i, size := range []int64{100 << 20, 7200 << 20} {
		name := []string{"small", "big"}[i]
		h.createBackup(bk{name: name, phase: storkv1.BackupCompleted}, t0.Add(time.Duration(i+1)*time.Minute))
		b := &storkv1.Backup{}
		if err := h.c.Get(ctx, client.ObjectKey{Namespace: "app", Name: name}, b); err != nil {
			t.Fatal(err)
		}
		b.Status.Progress.BytesTotal = size
		if err := h.c.Update(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	rtoMet := func() *metav1.Condition {
		s := h.at(t0.Add(10 * time.Minute))
		return meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRTOMet)
	}
	if c := rtoMet(); c == nil || c.Status != metav1.ConditionUnknown || c.Reason != "NotProven" || strings.Contains(c.Message, "suggest") {
		t.Fatalf("no restore yet: RTOMet %+v", c)
	}
	// 100 MiB restored in 100 s: 1 MiB/s; the newest backup, 7200 MiB, would take 2h.
	start := metav1.NewTime(t0.Add(3 * time.Minute))
	end := metav1.NewTime(start.Add(100 * time.Second))
	for _, rs := range []*storkv1.Restore{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r1"}, Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "small"}},
			Status: storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted, Progress: storkv1.Progress{BytesDone: 100 << 20},
				TimeRange: storkv1.TimeRange{StartTime: &start, CompletionTime: &end}}},
		// A restore of a backup that is not this schedule's: not counted.
		{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r2"}, Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "elsewhere"}},
			Status: storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted, Progress: storkv1.Progress{BytesDone: 100 << 30},
				TimeRange: storkv1.TimeRange{StartTime: &start, CompletionTime: &end}}},
	} {
		if err := h.c.Create(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	if c := rtoMet(); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "RestoreTooSlow" || !strings.Contains(c.Message, "about 2h0m0s") {
		t.Fatalf("RTOMet %+v, want False RestoreTooSlow (about 2h0m0s)", c)
	}
	if evs := drain(rec); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning RestoreTooSlow") {
		t.Errorf("events: %v", evs)
	}
}

// The schedule's RestoreDrills prove its RTO: the newest passed run's RTO is compared with the
// objective, a newer failed run turns RTOMet False, and the proven time is exported. Drills of
// other schedules do not count.
func TestObjectivesFromDrills(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	spec := storkv1.SnapshotScheduleSpec{Schedule: "@every 10m", Suspend: true,
		Objectives: &storkv1.Objectives{RTO: &metav1.Duration{Duration: 10 * time.Minute}}}
	spec.Template.Spec.BackupLocation = "loc"
	h := newHarness(t, spec, t0)
	rec := events.NewFakeRecorder(100)
	h.r.Recorder, h.r.Metrics = rec, &Metrics{Clock: h.clock}
	ctx := context.Background()
	run := func(result storkv1.DrillResult, reason string, rto time.Duration, done time.Time) storkv1.DrillRun {
		at := metav1.NewTime(done)
		r := storkv1.DrillRun{BackupName: "b1", StartTime: metav1.NewTime(done.Add(-rto)), CompletionTime: &at, Result: result, Reason: reason, Message: reason + " message"}
		if result == storkv1.DrillPassed {
			r.RTO = &metav1.Duration{Duration: rto}
		}
		return r
	}
	setDrill := func(name, schedule string, runs ...storkv1.DrillRun) {
		t.Helper()
		d := &storkv1.RestoreDrill{}
		err := h.c.Get(ctx, client.ObjectKey{Namespace: "app", Name: name}, d)
		d.Namespace, d.Name, d.Spec.ScheduleName = "app", name, schedule
		d.Status.History = runs
		for i := range runs {
			if runs[i].Result == storkv1.DrillPassed {
				d.Status.LastPassed = &runs[i]
				break
			}
		}
		if err == nil {
			err = h.c.Update(ctx, d)
		} else {
			err = h.c.Create(ctx, d)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rtoMet := func(at time.Duration) (*metav1.Condition, *storkv1.Protection) {
		s := h.at(t0.Add(at))
		return meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionRTOMet), s.Status.Protection
	}

	setDrill("other", "another-schedule", run(storkv1.DrillPassed, "Verified", time.Minute, t0.Add(time.Minute)))
	if c, _ := rtoMet(2 * time.Minute); c == nil || c.Reason != "NotProven" {
		t.Fatalf("only another schedule's drill: RTOMet %+v, want NotProven", c)
	}
	setDrill("weekly", "nightly", run(storkv1.DrillPassed, "Verified", 4*time.Minute, t0.Add(3*time.Minute)))
	c, p := rtoMet(4 * time.Minute)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "WithinRTO" || p.LastProvenRTO.Duration != 4*time.Minute ||
		!p.LastProvenTime.Time.Equal(t0.Add(3*time.Minute)) || !strings.HasPrefix(p.LastDrill, "weekly: Passed (Verified)") {
		t.Fatalf("passed drill: RTOMet %+v, protection %+v", c, p)
	}
	if evs := drain(rec); len(evs) != 1 || !strings.HasPrefix(evs[0], "Normal WithinRTO") {
		t.Errorf("events when a drill first proves the RTO: %v", evs)
	}
	want := `
# HELP stork_app_last_restore_proven_timestamp When a restore drill last restored and verified a backup of the schedule's application (Unix time).
# TYPE stork_app_last_restore_proven_timestamp gauge
stork_app_last_restore_proven_timestamp{namespace="app",schedule="nightly"} 1.77232338e+09
# HELP stork_app_last_proven_rto_seconds Recovery time measured by the last passed restore drill of the schedule's backups.
# TYPE stork_app_last_proven_rto_seconds gauge
stork_app_last_proven_rto_seconds{namespace="app",schedule="nightly"} 240
`
	if err := testutil.CollectAndCompare(h.r.Metrics, strings.NewReader(want), "stork_app_last_restore_proven_timestamp", "stork_app_last_proven_rto_seconds"); err != nil {
		t.Error(err)
	}

	// A newer run that failed: the proven RTO stays, but the condition says the drill failed.
	setDrill("weekly", "nightly", run(storkv1.DrillFailed, "VerificationFailed", 0, t0.Add(5*time.Minute)),
		run(storkv1.DrillPassed, "Verified", 4*time.Minute, t0.Add(3*time.Minute)))
	c, p = rtoMet(6 * time.Minute)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "DrillFailed" || !strings.Contains(c.Message, "VerificationFailed message") ||
		p.LastProvenRTO.Duration != 4*time.Minute {
		t.Fatalf("failed drill: RTOMet %+v, protection %+v", c, p)
	}
	if evs := drain(rec); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning DrillFailed") {
		t.Errorf("events: %v", evs)
	}
	// Passing again, but slower than the RTO.
	setDrill("weekly", "nightly", run(storkv1.DrillPassed, "Verified", 12*time.Minute, t0.Add(20*time.Minute)))
	if c, _ := rtoMet(21 * time.Minute); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "RTOMissed" || !strings.Contains(c.Message, "took 12m0s") {
		t.Fatalf("slow drill: RTOMet %+v", c)
	}
}
