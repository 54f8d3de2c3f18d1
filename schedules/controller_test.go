package schedules

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

type harness struct {
	t     *testing.T
	c     client.Client
	clock *clocktesting.FakePassiveClock
	r     *Reconciler
	key   client.ObjectKey
}

func newHarness(t *testing.T, spec storkv1.SnapshotScheduleSpec, created time.Time) *harness {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	spec.Template.Spec.Source.ClaimName = "data"
	sched := &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "nightly", UID: "sched-uid", Generation: 1,
		CreationTimestamp: metav1.Time{Time: created}}, Spec: spec}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(sched).WithStatusSubresource(sched, &storkv1.Snapshot{}).Build()
	clk := clocktesting.NewFakePassiveClock(created)
	return &harness{t: t, c: c, clock: clk, r: &Reconciler{Client: c, Clock: clk}, key: client.ObjectKeyFromObject(sched)}
}

// at sets the clock and reconciles once.
func (h *harness) at(now time.Time) *storkv1.SnapshotSchedule {
	h.t.Helper()
	h.clock.SetTime(now)
	if _, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: h.key}); err != nil {
		h.t.Fatal(err)
	}
	s := &storkv1.SnapshotSchedule{}
	if err := h.c.Get(context.Background(), h.key, s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) snapshots() []storkv1.Snapshot {
	h.t.Helper()
	var l storkv1.SnapshotList
	if err := h.c.List(context.Background(), &l); err != nil {
		h.t.Fatal(err)
	}
	var out []storkv1.Snapshot
	for _, s := range l.Items {
		if s.DeletionTimestamp == nil {
			out = append(out, s)
		}
	}
	return out
}

// finishAll plays the Snapshot controller: every Snapshot becomes phase.
func (h *harness) finishAll(phase storkv1.SnapshotPhase) {
	h.t.Helper()
	for _, s := range h.snapshots() {
		if s.Status.Phase == "" {
			s.Status.Phase = phase
			if err := h.c.Status().Update(context.Background(), &s); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

var t0 = time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)

func TestRunsAndCatchUp(t *testing.T) {
	h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "*/5 * * * *"}, t0)
	s := h.at(t0)
	if n := len(h.snapshots()); n != 0 || s.Status.NextScheduleTime == nil || !s.Status.NextScheduleTime.Time.Equal(time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC)) {
		t.Fatalf("before the first time: %d snapshots, next %v", n, s.Status.NextScheduleTime)
	}
	s = h.at(t0.Add(5 * time.Minute))
	snaps := h.snapshots()
	if len(snaps) != 1 || snaps[0].Name != "nightly-"+itoa(time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC).Unix()) ||
		snaps[0].Labels[LabelSchedule] != "nightly" || snaps[0].Spec.Source.ClaimName != "data" {
		t.Fatalf("first run: %+v", snaps)
	}
	// Reconciling again at the same time (a retry) starts nothing new.
	h.at(t0.Add(5 * time.Minute))
	if n := len(h.snapshots()); n != 1 {
		t.Fatalf("a retry made %d snapshots", n)
	}
	h.finishAll(storkv1.SnapshotReady)
	// The controller was down for an hour: one catch-up run, not twelve.
	s = h.at(t0.Add(65 * time.Minute))
	if n := len(h.snapshots()); n != 2 {
		t.Fatalf("after an hour down: %d snapshots, want 2", n)
	}
	if !strings.Contains(s.Status.History[0].Message, "ran once, for the latest") || !s.Status.History[0].ScheduledTime.Time.Equal(time.Date(2026, 11, 25, 11, 5, 0, 0, time.UTC)) {
		t.Errorf("catch-up run %+v", s.Status.History[0])
	}
	h.finishAll(storkv1.SnapshotReady)
	s = h.at(t0.Add(66 * time.Minute))
	if s.Status.LastResult != "Ready" || s.Status.LastSuccessfulTime == nil || s.Status.History[0].Phase != "Ready" {
		t.Errorf("status after the runs: %+v", s.Status)
	}
}

func TestConcurrencyForbidSkips(t *testing.T) {
	h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "@every 1m"}, t0)
	h.at(t0.Add(time.Minute))
	s := h.at(t0.Add(2 * time.Minute)) // the first is still Pending
	if n := len(h.snapshots()); n != 1 {
		t.Fatalf("%d snapshots while the first runs, want 1", n)
	}
	if s.Status.History[0].Phase != "Skipped" || !strings.Contains(s.Status.History[0].Message, "still Pending") {
		t.Errorf("skipped run %+v", s.Status.History[0])
	}
	h.finishAll(storkv1.SnapshotFailed)
	h.at(t0.Add(3 * time.Minute))
	if n := len(h.snapshots()); n != 2 {
		t.Fatalf("%d snapshots after the first ended, want 2", n)
	}
	// A Snapshot being deleted (by retention, waiting on a finalizer) is not a run going on.
	for _, sn := range h.snapshots() {
		if sn.Status.Phase == "" {
			sn.Finalizers = []string{"stork.dev/snapshot-data"}
			if err := h.c.Update(context.Background(), &sn); err != nil {
				t.Fatal(err)
			}
			if err := h.c.Delete(context.Background(), &sn); err != nil {
				t.Fatal(err)
			}
		}
	}
	s = h.at(t0.Add(4 * time.Minute))
	if s.Status.History[0].Phase == "Skipped" {
		t.Errorf("a deleting Snapshot made the run skip: %+v", s.Status.History[0])
	}
}

func TestNextRunAndEdits(t *testing.T) {
	h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "@every 1m"}, t0)
	// Reconciled 7 seconds late: the next run is a minute after the one that ran, not after now.
	s := h.at(t0.Add(time.Minute + 7*time.Second))
	if want := t0.Add(2 * time.Minute); !s.Status.NextScheduleTime.Time.Equal(want) {
		t.Errorf("next run %v, want %v", s.Status.NextScheduleTime.Time, want)
	}
	h.finishAll(storkv1.SnapshotReady)
	// An edit (here: a new expression) does not catch up times the old spec missed.
	s.Spec.Schedule = "@every 10m"
	s.Generation++
	if err := h.c.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	h.at(t0.Add(time.Hour))
	if n := len(h.snapshots()); n != 1 {
		t.Errorf("%d snapshots after an edit, want no catch-up run", n)
	}
}

func TestRetention(t *testing.T) {
	h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "@every 1m", Retention: storkv1.Retention{KeepLast: 2}}, t0)
	for i := 1; i <= 5; i++ {
		h.at(t0.Add(time.Duration(i) * time.Minute))
		h.finishAll(storkv1.SnapshotReady)
	}
	h.at(t0.Add(5*time.Minute + time.Second))
	snaps := h.snapshots()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots kept, want 2", len(snaps))
	}
	for _, s := range snaps {
		if !scheduledTime(&s).After(t0.Add(3 * time.Minute)) {
			t.Errorf("kept %s, an old one", s.Name)
		}
	}
}

func TestSuspendAndInvalid(t *testing.T) {
	h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "@every 1m", Suspend: true}, t0)
	s := h.at(t0.Add(10 * time.Minute))
	if n := len(h.snapshots()); n != 0 || s.Status.NextScheduleTime != nil {
		t.Fatalf("suspended schedule: %d snapshots, next %v", n, s.Status.NextScheduleTime)
	}
	for _, tc := range []struct{ schedule, tz, reason, text string }{
		{"61 * * * *", "", "InvalidSchedule", "spec.schedule"},
		{"0 0 30 2 *", "", "InvalidSchedule", "never fires"},
		{"CRON_TZ=Asia/Tokyo 0 2 * * *", "", "InvalidSchedule", "spec.timeZone"},
		{"@every 1m", "Mars/Olympus", "InvalidTimeZone", "spec.timeZone \"Mars/Olympus\""},
	} {
		h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: tc.schedule, TimeZone: tc.tz}, t0)
		s := h.at(t0.Add(time.Hour))
		c := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionValid)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tc.reason || !strings.Contains(c.Message, tc.text) || len(h.snapshots()) != 0 {
			t.Errorf("%s/%s: Valid %+v", tc.schedule, tc.tz, c)
		}
	}
}

func TestTimeZone(t *testing.T) {
	// 02:00 in Tokyo is 17:00 UTC the day before.
	h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "0 2 * * *", TimeZone: "Asia/Tokyo"}, t0)
	s := h.at(t0)
	if want := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC); !s.Status.NextScheduleTime.Time.Equal(want) {
		t.Errorf("next run %v, want %v", s.Status.NextScheduleTime.Time.UTC(), want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
