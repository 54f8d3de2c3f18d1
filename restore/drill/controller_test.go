package drill

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	t     *testing.T
	c     client.Client
	clock *clocktesting.FakeClock
	r     *Reconciler
	rec   *events.FakeRecorder
	key   types.NamespacedName
}

// newHarness makes a drill with spec in namespace app, a schedule "nightly" (UID sched-uid),
// and the given Backups.
func newHarness(t *testing.T, spec storkv1.RestoreDrillSpec, backups ...*storkv1.Backup) *harness {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	d := &storkv1.RestoreDrill{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "drill", UID: "drill-uid", Generation: 1,
		CreationTimestamp: metav1.NewTime(t0)}, Spec: spec}
	objs := []client.Object{d, &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "nightly", UID: "sched-uid"}}}
	for _, b := range backups {
		objs = append(objs, b)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithStatusSubresource(&storkv1.RestoreDrill{}, &storkv1.Backup{}, &storkv1.Restore{}).Build()
	clk := clocktesting.NewFakeClock(t0)
	rec := events.NewFakeRecorder(100)
	return &harness{t: t, c: c, clock: clk, rec: rec, key: client.ObjectKeyFromObject(d),
		r: &Reconciler{Client: c, Clock: clk, Recorder: rec, AdminNamespace: "stork-system", Poll: 5 * time.Second}}
}

func backup(name, schedUID string, phase storkv1.BackupPhase, captured time.Time) *storkv1.Backup {
	return &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Generation: 1,
		Labels:      map[string]string{storkv1.LabelScheduleUID: schedUID},
		Annotations: map[string]string{storkv1.AnnotationCaptureTime: captured.Format(time.RFC3339)}},
		Status: storkv1.BackupStatus{Phase: phase, SourceNamespace: "app"}}
}

// at sets the clock, reconciles once and returns the drill and the result.
func (h *harness) at(now time.Time) (*storkv1.RestoreDrill, ctrl.Result) {
	h.t.Helper()
	h.clock.SetTime(now)
	res, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: h.key})
	if err != nil {
		h.t.Fatal(err)
	}
	d := &storkv1.RestoreDrill{}
	if err := h.c.Get(context.Background(), h.key, d); err != nil {
		h.t.Fatal(err)
	}
	return d, res
}

// gone reconciles a deleted drill, which must then be gone.
func (h *harness) gone(now time.Time) {
	h.t.Helper()
	h.clock.SetTime(now)
	if _, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: h.key}); err != nil {
		h.t.Fatal(err)
	}
	if h.exists(&storkv1.RestoreDrill{}, h.key.Namespace, h.key.Name) {
		h.t.Fatal("deleted drill still there: its finalizer was not removed")
	}
}

// finishRestore gives the run's Restore a final status.
func (h *harness) finishRestore(name string, st storkv1.RestoreStatus) {
	h.t.Helper()
	rs := &storkv1.Restore{}
	if err := h.c.Get(context.Background(), client.ObjectKey{Namespace: "stork-system", Name: name}, rs); err != nil {
		h.t.Fatal(err)
	}
	rs.Status = st
	if err := h.c.Status().Update(context.Background(), rs); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) exists(obj client.Object, ns, name string) bool {
	h.t.Helper()
	err := h.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		h.t.Fatal(err)
	}
	return err == nil
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func timeRange(start, end time.Time) storkv1.TimeRange {
	s, e := metav1.NewTime(start), metav1.NewTime(end)
	return storkv1.TimeRange{StartTime: &s, CompletionTime: &e}
}

func verified(claim string, files int64, took time.Duration) storkv1.RestoreVolumeStatus {
	return storkv1.RestoreVolumeStatus{SourceClaim: claim, Phase: storkv1.VolumeSucceeded,
		Verification: &storkv1.Verification{Files: files, Bytes: files << 10, Duration: metav1.Duration{Duration: took}}}
}

// A one-off drill of a schedule restores its newest Completed backup into a sandbox through a
// verifying Restore, records the RTO without the verification time, marks the Backup Verified,
// removes the sandbox and the Restore, and does not run again.
func TestDrillPasses(t *testing.T) {
	h := newHarness(t, storkv1.RestoreDrillSpec{ScheduleName: "nightly", VolumesOnly: true,
		StorageClassMapping: map[string]string{"fast": "slow"}},
		backup("old", "sched-uid", storkv1.BackupCompleted, t0.Add(-2*time.Hour)),
		backup("newest", "sched-uid", storkv1.BackupCompleted, t0.Add(-time.Hour)),
		backup("running", "sched-uid", storkv1.BackupInProgress, t0.Add(-time.Minute)),
		backup("failed", "sched-uid", storkv1.BackupFailed, t0.Add(-time.Minute)),
		backup("not-ours", "other-uid", storkv1.BackupCompleted, t0.Add(-time.Minute)))
	ctx := context.Background()

	d, _ := h.at(t0)
	run := d.Status.Current
	if run == nil || run.BackupName != "newest" || run.Result != storkv1.DrillRunning || !strings.HasPrefix(run.Sandbox, "drill-") || len(run.Sandbox) > 63 {
		t.Fatalf("current run %+v, want one of Backup newest", run)
	}
	d, _ = h.at(t0.Add(time.Second))
	ns, rs := &corev1.Namespace{}, &storkv1.Restore{}
	if !h.exists(ns, "", run.Sandbox) || ns.Labels[storkv1.LabelDrillUID] != "drill-uid" {
		t.Fatalf("sandbox namespace %s: %+v", run.Sandbox, ns.ObjectMeta)
	}
	if !h.exists(rs, "stork-system", run.RestoreName) {
		t.Fatalf("no Restore %s", run.RestoreName)
	}
	want := storkv1.RestoreSpec{Source: storkv1.RestoreSource{Namespace: "app", BackupName: "newest"},
		NamespaceMapping: map[string]string{"app": run.Sandbox}, StorageClassMapping: map[string]string{"fast": "slow"}, VolumesOnly: true, Verify: true}
	if got := rs.Spec; got.Source != want.Source || got.NamespaceMapping["app"] != run.Sandbox || got.StorageClassMapping["fast"] != "slow" || !got.Verify || !got.VolumesOnly {
		t.Fatalf("Restore spec %+v, want %+v", got, want)
	}
	if rs.Annotations[storkv1.AnnotationDrill] != "app/drill" {
		t.Errorf("Restore annotations %v: the watch cannot find the drill", rs.Annotations)
	}

	// Still restoring: the run waits.
	if d, res := h.at(t0.Add(time.Minute)); d.Status.Current == nil || res.RequeueAfter != 5*time.Second {
		t.Fatalf("running: current %+v, requeue %v", d.Status.Current, res.RequeueAfter)
	}
	// Restored in 100 s, of which the longest verification took 30 s: RTO 70 s.
	h.finishRestore(run.RestoreName, storkv1.RestoreStatus{Phase: storkv1.RestoreCompleted, TimeRange: timeRange(t0.Add(time.Second), t0.Add(100*time.Second)),
		Volumes: []storkv1.RestoreVolumeStatus{verified("data", 10, 30*time.Second), verified("logs", 5, 10*time.Second)}})
	d, _ = h.at(t0.Add(101 * time.Second))
	if d.Status.Current != nil || len(d.Status.History) != 1 {
		t.Fatalf("status %+v, want one finished run", d.Status)
	}
	got := d.Status.History[0]
	if got.Result != storkv1.DrillPassed || got.RTO == nil || got.RTO.Duration != 70*time.Second || got.VerifiedFiles != 15 || got.VerifiedBytes != 15<<10 ||
		d.Status.LastPassed == nil || d.Status.LastPassed.RTO.Duration != 70*time.Second {
		t.Fatalf("run %+v, want Passed with RTO 70s and 15 files verified", got)
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, storkv1.ConditionPassed); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Passed %+v", c)
	}
	if h.exists(&corev1.Namespace{}, "", run.Sandbox) || h.exists(&storkv1.Restore{}, "stork-system", run.RestoreName) {
		t.Errorf("sandbox or Restore left after a passed run")
	}
	b := &storkv1.Backup{}
	h.exists(b, "app", "newest")
	if c := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionVerified); c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "RestoreDrill drill") {
		t.Errorf("Backup Verified %+v", c)
	}
	if evs := h.events(); len(evs) != 2 || !strings.HasPrefix(evs[0], "Normal DrillStarted") || !strings.HasPrefix(evs[1], "Normal DrillPassed") {
		t.Errorf("events %v", evs)
	}
	if v := testutil.ToFloat64(lastRTO.WithLabelValues("app", "drill")); v != 70 {
		t.Errorf("stork_drill_last_rto_seconds %v", v)
	}

	// A one-off drill runs once.
	if d, res := h.at(t0.Add(time.Hour)); d.Status.Current != nil || len(d.Status.History) != 1 || res.RequeueAfter != 0 {
		t.Errorf("one-off drill ran again: %+v", d.Status)
	}
	// Deleted: the finalizer lets it go and its series go.
	if err := h.c.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	h.gone(t0.Add(2 * time.Hour))
	if n := testutil.CollectAndCount(lastPassed); n != 0 {
		t.Errorf("%d stork_drill_last_run_passed series left", n)
	}
}

// A drill whose restore fails (a damaged pack) fails, names the damage, marks the Backup
// Verified False with a Warning Event, and keeps the sandbox with keepSandbox OnFailure; deleting
// the drill leaves the kept sandbox.
func TestDrillFails(t *testing.T) {
	probe := storkv1.RestoreHook{Hook: storkv1.Hook{Name: "probe", Command: []string{"pg_isready"}}}
	h := newHarness(t, storkv1.RestoreDrillSpec{BackupName: "b1", KeepSandbox: storkv1.KeepOnFailure, Hooks: []storkv1.RestoreHook{probe}},
		backup("b1", "sched-uid", storkv1.BackupCompleted, t0.Add(-time.Hour)))
	d, _ := h.at(t0)
	run := *d.Status.Current
	h.at(t0.Add(time.Second))
	if rs := (&storkv1.Restore{}); !h.exists(rs, "stork-system", run.RestoreName) || len(rs.Spec.Hooks) != 1 || rs.Spec.Hooks[0].Name != "probe" || rs.Spec.VolumesOnly {
		t.Fatalf("the drill's Restore does not carry its probe hooks")
	}
	damage := "data/3f/3fa9…: pack is damaged (authentication failed)"
	h.finishRestore(run.RestoreName, storkv1.RestoreStatus{Phase: storkv1.RestoreFailed, TimeRange: timeRange(t0, t0.Add(time.Minute)),
		Conditions: []metav1.Condition{{Type: storkv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "VolumesFailed", Message: "1 of 1 volumes failed"}},
		Volumes:    []storkv1.RestoreVolumeStatus{{SourceClaim: "data", Phase: storkv1.VolumeFailed, Reason: "DownloadFailed", Message: damage}}})
	d, _ = h.at(t0.Add(2 * time.Minute))
	got := d.Status.History[0]
	if got.Result != storkv1.DrillFailed || got.Reason != "VolumesFailed" || !strings.Contains(got.Message, damage) || got.RTO != nil || !got.SandboxKept {
		t.Fatalf("run %+v, want Failed naming the damaged pack, sandbox kept", got)
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, storkv1.ConditionPassed); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Passed %+v", c)
	}
	b := &storkv1.Backup{}
	h.exists(b, "app", "b1")
	if c := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionVerified); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, damage) {
		t.Errorf("Backup Verified %+v", c)
	}
	evs := strings.Join(h.events(), "\n")
	if strings.Count(evs, "Warning DrillFailed") != 2 { // on the drill and on the Backup
		t.Errorf("events:\n%s", evs)
	}
	if v := testutil.ToFloat64(lastPassed.WithLabelValues("app", "drill")); v != 0 {
		t.Errorf("stork_drill_last_run_passed %v, want 0", v)
	}
	ns := &corev1.Namespace{}
	if !h.exists(ns, "", run.Sandbox) || ns.Labels[LabelKept] != "true" {
		t.Fatalf("kept sandbox %+v", ns.ObjectMeta)
	}
	if err := h.c.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	h.gone(t0.Add(time.Hour))
	if !h.exists(&corev1.Namespace{}, "", run.Sandbox) {
		t.Error("deleting the drill removed the sandbox it kept on purpose")
	}
}

// Runs that cannot start or finish fail with a reason that says what to do; a run already going
// when the drill is deleted has its sandbox and Restore removed.
func TestDrillCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    storkv1.RestoreDrillSpec
		backups []*storkv1.Backup
		reason  string
	}{
		{"missing backup", storkv1.RestoreDrillSpec{BackupName: "gone"}, nil, "BackupNotFound"},
		{"failed backup", storkv1.RestoreDrillSpec{BackupName: "b"}, []*storkv1.Backup{backup("b", "", storkv1.BackupFailed, t0)}, "BackupNotCompleted"},
		{"missing schedule", storkv1.RestoreDrillSpec{ScheduleName: "weekly"}, nil, "ScheduleNotFound"},
		{"no backup of the schedule", storkv1.RestoreDrillSpec{ScheduleName: "nightly"}, []*storkv1.Backup{backup("b", "sched-uid", storkv1.BackupFailed, t0)}, "NoBackup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.spec, tc.backups...)
			d, _ := h.at(t0)
			if d.Status.Current != nil || len(d.Status.History) != 1 || d.Status.History[0].Reason != tc.reason || d.Status.History[0].Result != storkv1.DrillFailed {
				t.Fatalf("status %+v, want one failed run %s", d.Status, tc.reason)
			}
		})
	}
	t.Run("backup still running waits", func(t *testing.T) {
		h := newHarness(t, storkv1.RestoreDrillSpec{ScheduleName: "nightly"}, backup("b", "sched-uid", storkv1.BackupInProgress, t0))
		if d, res := h.at(t0); d.Status.Current != nil || len(d.Status.History) != 0 || res.RequeueAfter != 5*time.Second {
			t.Fatalf("status %+v requeue %v, want a wait", d.Status, res.RequeueAfter)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		h := newHarness(t, storkv1.RestoreDrillSpec{BackupName: "b", Timeout: &metav1.Duration{Duration: 10 * time.Minute}},
			backup("b", "", storkv1.BackupCompleted, t0))
		d, _ := h.at(t0)
		run := *d.Status.Current
		h.at(t0.Add(time.Second))
		if _, res := h.at(t0.Add(9*time.Minute + 58*time.Second)); res.RequeueAfter != 2*time.Second {
			t.Errorf("requeue %v, want the 2 s left", res.RequeueAfter)
		}
		d, _ = h.at(t0.Add(10 * time.Minute))
		if len(d.Status.History) != 1 || d.Status.History[0].Reason != "Timeout" || !strings.Contains(d.Status.History[0].Message, "spec.timeout 10m0s") {
			t.Fatalf("history %+v, want a Timeout", d.Status.History)
		}
		if h.exists(&corev1.Namespace{}, "", run.Sandbox) || h.exists(&storkv1.Restore{}, "stork-system", run.RestoreName) {
			t.Error("sandbox or Restore left after a timeout")
		}
	})
	t.Run("deleted while running", func(t *testing.T) {
		h := newHarness(t, storkv1.RestoreDrillSpec{BackupName: "b"}, backup("b", "", storkv1.BackupCompleted, t0))
		d, _ := h.at(t0)
		run := *d.Status.Current
		d, _ = h.at(t0.Add(time.Second))
		if err := h.c.Delete(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		h.gone(t0.Add(2 * time.Second))
		if h.exists(&corev1.Namespace{}, "", run.Sandbox) || h.exists(&storkv1.Restore{}, "stork-system", run.RestoreName) {
			t.Error("sandbox or Restore left after the drill was deleted")
		}
	})
}

// A drill on a cron schedule runs at each time, keeps historyLimit runs, and says when it runs
// next; suspended, it does not run; a bad expression is reported on Valid.
func TestDrillSchedule(t *testing.T) {
	h := newHarness(t, storkv1.RestoreDrillSpec{BackupName: "gone", Schedule: "@every 1h", HistoryLimit: 2})
	d, res := h.at(t0.Add(time.Minute))
	if d.Status.Current != nil || len(d.Status.History) != 0 || d.Status.NextRunTime == nil || !d.Status.NextRunTime.Time.Equal(t0.Add(time.Hour)) ||
		res.RequeueAfter < 59*time.Minute {
		t.Fatalf("before the first time: status %+v requeue %v", d.Status, res.RequeueAfter)
	}
	for i := 1; i <= 3; i++ {
		d, _ = h.at(t0.Add(time.Duration(i)*time.Hour + time.Second))
		if !d.Status.LastScheduleTime.Time.Equal(t0.Add(time.Duration(i) * time.Hour)) {
			t.Fatalf("run %d: last schedule time %v", i, d.Status.LastScheduleTime)
		}
	}
	if len(d.Status.History) != 2 || !d.Status.NextRunTime.Time.Equal(t0.Add(4*time.Hour)) {
		t.Fatalf("history %d runs (want 2), next %v", len(d.Status.History), d.Status.NextRunTime)
	}
	d.Spec.Suspend = true
	if err := h.c.Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if d, _ = h.at(t0.Add(5 * time.Hour)); d.Status.NextRunTime != nil || !d.Status.LastScheduleTime.Time.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("suspended: status %+v", d.Status)
	}
	d.Spec.Suspend, d.Spec.TimeZone = false, "Mars/Olympus"
	if err := h.c.Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	d, _ = h.at(t0.Add(6 * time.Hour))
	if c := meta.FindStatusCondition(d.Status.Conditions, storkv1.ConditionValid); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "InvalidTimeZone" {
		t.Errorf("Valid %+v", c)
	}
}
