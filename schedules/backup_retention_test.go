package schedules

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1types "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/retention"
)

// bk is a Backup of the test schedule; Backups are created one minute apart, in list order.
type bk struct {
	name     string
	phase    storkv1.BackupPhase
	imported bool
	snapshot string // spec.snapshotName; the Backup's name when empty, "-" for none
	schedule string // stork.dev/schedule-uid; the test schedule's when empty
}

func TestBackupRetention(t *testing.T) {
	completed := func(names ...string) []bk {
		var out []bk
		for _, n := range names {
			out = append(out, bk{name: n, phase: storkv1.BackupCompleted})
		}
		return out
	}
	cases := []struct {
		name      string
		retention storkv1.Retention
		backupRet *storkv1.Retention
		running   string // a Snapshot of the schedule still being taken
		backups   []bk
		kept      []string
	}{
		{name: "keepLast 2 of 4 Completed deletes the 2 oldest", retention: storkv1.Retention{KeepLast: 2},
			backups: completed("b1", "b2", "b3", "b4"), kept: []string{"b3", "b4"}},
		{name: "backupRetention overrides retention", retention: storkv1.Retention{KeepLast: 1}, backupRet: &storkv1.Retention{KeepLast: 3},
			backups: completed("b1", "b2", "b3", "b4"), kept: []string{"b2", "b3", "b4"}},
		{name: "an empty backupRetention keeps every Backup", retention: storkv1.Retention{KeepLast: 1}, backupRet: &storkv1.Retention{},
			backups: completed("b1", "b2", "b3"), kept: []string{"b1", "b2", "b3"}},
		{name: "no retention at all keeps every Backup",
			backups: completed("b1", "b2"), kept: []string{"b1", "b2"}},
		{name: "PartiallyFailed Backups count as usable", retention: storkv1.Retention{KeepLast: 1},
			backups: []bk{{name: "b1", phase: storkv1.BackupCompleted}, {name: "b2", phase: storkv1.BackupPartiallyFailed}},
			kept:    []string{"b2"}},
		{name: "imported, running and hand-made Backups are untouched", retention: storkv1.Retention{KeepLast: 1}, running: "snap-running",
			backups: []bk{
				{name: "imported", phase: storkv1.BackupCompleted, imported: true},
				{name: "of-running-snapshot", phase: storkv1.BackupCompleted, snapshot: "snap-running"},
				{name: "by-hand", phase: storkv1.BackupCompleted, snapshot: "-"},
				{name: "pending", phase: ""},
				{name: "in-progress", phase: storkv1.BackupInProgress},
				{name: "old", phase: storkv1.BackupCompleted},
				{name: "new", phase: storkv1.BackupCompleted},
			},
			kept: []string{"imported", "of-running-snapshot", "by-hand", "pending", "in-progress", "new"}},
		{name: "another schedule's Backups are untouched", retention: storkv1.Retention{KeepLast: 1},
			backups: []bk{{name: "other", phase: storkv1.BackupCompleted, schedule: "other-uid"}, {name: "b1", phase: storkv1.BackupCompleted},
				{name: "b2", phase: storkv1.BackupCompleted}},
			kept: []string{"other", "b2"}},
		{name: "failed Backups beyond the newest 3 are deleted", retention: storkv1.Retention{KeepLast: 1},
			backups: []bk{{name: "f1", phase: storkv1.BackupFailed}, {name: "f2", phase: storkv1.BackupFailed}, {name: "ok", phase: storkv1.BackupCompleted},
				{name: "f3", phase: storkv1.BackupFailed}, {name: "f4", phase: storkv1.BackupFailed}, {name: "f5", phase: storkv1.BackupFailed}},
			kept: []string{"ok", "f3", "f4", "f5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			// Suspended: no run gets in the way; retention applies all the same.
			h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "@every 1m", Suspend: true, Retention: tc.retention, BackupRetention: tc.backupRet}, t0)
			rec := events.NewFakeRecorder(100)
			h.r.Recorder = rec
			if tc.running != "" {
				snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: tc.running,
					Labels: map[string]string{LabelSchedule: "nightly", LabelScheduleUID: "sched-uid"}}}
				if err := h.c.Create(ctx, snap); err != nil {
					t.Fatal(err)
				}
			}
			for i, b := range tc.backups {
				h.createBackup(b, t0.Add(time.Duration(i+1)*time.Minute))
			}
			h.at(t0.Add(time.Hour))
			if got := h.backupNames(); !slices.Equal(got, sorted(tc.kept)) {
				t.Errorf("kept %v, want %v", got, sorted(tc.kept))
			}
			pruned := 0
			for _, e := range drain(rec) {
				if strings.HasPrefix(e, "Normal BackupPruned deleted Backup ") {
					pruned++
				}
			}
			if want := len(tc.backups) - len(tc.kept); pruned != want {
				t.Errorf("%d BackupPruned Events, want %d", pruned, want)
			}
		})
	}
}

// A schedule's Snapshots and Backups follow their own policies in the same reconcile.
func TestSnapshotAndBackupRetentionTogether(t *testing.T) {
	h := newHarness(t, storkv1.SnapshotScheduleSpec{Schedule: "@every 1m", Retention: storkv1.Retention{KeepLast: 1},
		BackupRetention: &storkv1.Retention{KeepLast: 3}}, t0)
	var made []string
	for i := 1; i <= 4; i++ {
		h.at(t0.Add(time.Duration(i) * time.Minute))
		h.finishAll(storkv1.SnapshotReady)
		// The Snapshot controller's part: the new Snapshot's Backup, with its schedule labels.
		snaps := h.snapshots()
		newest := slices.MaxFunc(snaps, func(a, b storkv1.Snapshot) int { return scheduledTime(&a).Compare(scheduledTime(&b)) })
		h.createBackup(bk{name: newest.Name, phase: storkv1.BackupCompleted}, scheduledTime(&newest).Add(time.Second))
		made = append(made, newest.Name)
	}
	final := h.at(t0.Add(4*time.Minute + time.Second))
	if n := len(h.snapshots()); n != 1 {
		t.Errorf("%d Snapshots kept, want 1", n)
	}
	if got, want := h.backupNames(), sorted(made[1:]); !slices.Equal(got, want) {
		t.Errorf("Backups kept: %v, want the 3 newest %v", got, want)
	}
	// keepLast 3 at one run a minute: a Backup is kept about 3 minutes, which a location with
	// Object Lock retains new objects for at least.
	if span := final.Status.BackupRetentionSpan; span == nil || span.Duration != 3*time.Minute {
		t.Errorf("status.backupRetentionSpan %v, want 3m", span)
	}
}

// createBackup makes a Backup of the test schedule as the Snapshot and Backup controllers (or
// sync) would have left it.
func (h *harness) createBackup(b bk, created time.Time) {
	h.t.Helper()
	snapshot := b.snapshot
	switch snapshot {
	case "":
		snapshot = b.name
	case "-":
		snapshot = ""
	}
	uid := b.schedule
	if uid == "" {
		uid = "sched-uid"
	}
	obj := &storkv1.Backup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: b.name, UID: metav1types.UID("uid-" + b.name), CreationTimestamp: metav1.Time{Time: created},
			Labels: map[string]string{LabelSchedule: "nightly", LabelScheduleUID: uid}},
		Spec:   storkv1.BackupSpec{SnapshotName: snapshot, BackupLocation: "loc"},
		Status: storkv1.BackupStatus{Phase: b.phase, Imported: b.imported},
	}
	if err := h.c.Create(context.Background(), obj); err != nil {
		h.t.Fatal(err)
	}
}

// backupNames lists the Backups left, by name.
func (h *harness) backupNames() []string {
	h.t.Helper()
	var l storkv1.BackupList
	if err := h.c.List(context.Background(), &l); err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, b := range l.Items {
		if b.DeletionTimestamp == nil {
			out = append(out, b.Name)
		}
	}
	return sorted(out)
}

func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestUnkeptJudgesByTheGivenTime(t *testing.T) {
	type item struct {
		name string
		at   time.Time
	}
	items := []item{{"new", t0.Add(2 * time.Hour)}, {"old", t0}, {"mid", t0.Add(time.Hour)}}
	drop := unkept(items, retention.Policy{Last: 1}, time.UTC, func(i *item) time.Time { return i.at })
	if len(drop) != 2 || drop[0].name == "new" || drop[1].name == "new" {
		t.Errorf("dropped %v, want old and mid", drop)
	}
	if drop := unkept(items, retention.Policy{}, time.UTC, func(i *item) time.Time { return i.at }); drop != nil {
		t.Errorf("an empty policy dropped %v", drop)
	}
}

// A Snapshot whose Backup is still copying outlives retention until the copy ends.
func TestSnapshotRetentionWaitsForItsBackup(t *testing.T) {
	ctx := context.Background()
	spec := storkv1.SnapshotScheduleSpec{Schedule: "@every 1m", Retention: storkv1.Retention{KeepLast: 1}}
	spec.Template.Spec.BackupLocation = "loc"
	h := newHarness(t, spec, t0)
	phases := []storkv1.BackupPhase{storkv1.BackupInProgress, storkv1.BackupCompleted}
	for i := 1; i <= 2; i++ {
		h.at(t0.Add(time.Duration(i) * time.Minute))
		h.finishAll(storkv1.SnapshotReady)
		snaps := h.snapshots()
		newest := slices.MaxFunc(snaps, func(a, b storkv1.Snapshot) int { return scheduledTime(&a).Compare(scheduledTime(&b)) })
		h.createBackup(bk{name: newest.Name, phase: phases[i-1]}, scheduledTime(&newest).Add(time.Second))
		newest.Status.BackupName = newest.Name
		if err := h.c.Status().Update(ctx, &newest); err != nil {
			t.Fatal(err)
		}
	}
	h.at(t0.Add(2*time.Minute + time.Second))
	if n := len(h.snapshots()); n != 2 {
		t.Fatalf("%d Snapshots, want 2: the older one's Backup is still copying", n)
	}
	// The copy ends: the next pass deletes the older Snapshot.
	var list storkv1.BackupList
	if err := h.c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if b := &list.Items[i]; b.Status.Phase == storkv1.BackupInProgress {
			b.Status.Phase = storkv1.BackupCompleted
			if err := h.c.Update(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.at(t0.Add(2*time.Minute + 2*time.Second))
	if n := len(h.snapshots()); n != 1 {
		t.Errorf("%d Snapshots, want 1 once the Backup completed", n)
	}
}
