package schedules

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/retention"
	"stork.dev/stork/internal/conditions"
	"stork.dev/stork/internal/cronspec"
)

// Labels and annotations on the Snapshots a schedule makes. The Snapshot controller copies the
// two labels onto the Backup of a Snapshot that names a backupLocation.
const (
	// LabelSchedule names the schedule that made a Snapshot (or its Backup).
	LabelSchedule = storkv1.LabelSchedule
	// LabelScheduleUID is the UID of that schedule: runs and retention act on the Snapshots and
	// Backups of this schedule only, not on those of an earlier schedule of the same name.
	LabelScheduleUID = storkv1.LabelScheduleUID
	// AnnotationScheduledTime is the time the run was due (RFC 3339), which retention sorts by.
	AnnotationScheduledTime = "stork.dev/scheduled-time"
)

// keepFailed is how many failed Snapshots (and failed Backups) of a schedule are kept for a look
// at what went wrong; older failed ones are deleted.
const keepFailed = 3

// historyLen bounds status.history.
const historyLen = 20

// Reconciler runs SnapshotSchedules. A run is due when a time of the schedule has passed since
// the last run; after downtime only the latest missed time runs (one catch-up, never a burst).
// Each run creates a Snapshot named after its scheduled time, so a retried reconcile creates it
// once. Deleting a schedule keeps its Snapshots: their data is not the schedule's to drop.
type Reconciler struct {
	Client client.Client
	// Reader reads the schedule at the start of each reconcile (an uncached reader: a run must
	// not be started twice because the cache had not seen the last one). Defaults to Client.
	Reader   client.Reader
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// Metrics, if set, exports the schedules' recovery objectives (register it).
	Metrics *Metrics
}

// SetupWithManager registers the controller; the changes of a Snapshot or Backup wake its
// schedule (a Backup completes after its Snapshot is Ready, and only then counts for retention),
// and so does a change of a RestoreDrill of its backups (proven RTO).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	toSchedule := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if name := o.GetLabels()[LabelSchedule]; name != "" {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
		}
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("snapshotschedule").
		For(&storkv1.SnapshotSchedule{}).
		Watches(&storkv1.Snapshot{}, toSchedule).
		Watches(&storkv1.Backup{}, toSchedule).
		Watches(&storkv1.RestoreDrill{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if d, ok := o.(*storkv1.RestoreDrill); ok && d.Spec.ScheduleName != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.ScheduleName}}}
			}
			return nil
		})).
		Complete(r)
}

// Parse reads a schedule's cron expression in its time zone; the error names the field.
func Parse(spec storkv1.SnapshotScheduleSpec) (cron.Schedule, *time.Location, error) {
	return cronspec.Parse(spec.Schedule, spec.TimeZone)
}

func (r *Reconciler) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sched := &storkv1.SnapshotSchedule{}
	if err := r.reader().Get(ctx, req.NamespacedName, sched); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if sched.DeletionTimestamp != nil {
		r.Metrics.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	orig := sched.DeepCopy()
	result, err := r.step(ctx, sched)
	if err != nil {
		return ctrl.Result{}, err
	}
	sched.Status.ObservedGeneration = sched.Generation
	if err := r.Client.Status().Patch(ctx, sched, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the status of SnapshotSchedule %s: %w", req.NamespacedName, err)
	}
	return result, nil
}

func (r *Reconciler) step(ctx context.Context, sched *storkv1.SnapshotSchedule) (ctrl.Result, error) {
	st := &sched.Status
	cs, loc, err := Parse(sched.Spec)
	if err != nil {
		reason := cronspec.Reason(err)
		if !meta.IsStatusConditionFalse(st.Conditions, storkv1.ConditionValid) {
			r.event(sched, corev1.EventTypeWarning, reason, err.Error())
		}
		setCondition(sched, storkv1.ConditionValid, false, reason, err.Error())
		st.NextScheduleTime = nil
		return ctrl.Result{}, nil
	}
	setCondition(sched, storkv1.ConditionValid, true, "Scheduled", "schedule "+sched.Spec.Schedule+" in "+loc.String())

	snaps, err := r.snapshots(ctx, sched)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.updateHistory(sched, snaps)

	now := r.Clock.Now()
	if sched.Spec.Suspend {
		st.NextScheduleTime = nil
		setCondition(sched, storkv1.ConditionProgressing, false, "Suspended", "spec.suspend is true: no new runs")
		wake, err := r.retainAndProtect(ctx, sched, snaps, cs, loc, now)
		if wake > 0 {
			wake += 100 * time.Millisecond // past the deadline, not just before it
		}
		return ctrl.Result{RequeueAfter: wake}, err
	}
	last := sched.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		last = st.LastScheduleTime.Time
	}
	if st.ObservedGeneration != 0 && st.ObservedGeneration != sched.Generation {
		// Edited (a new expression or time zone, or resumed): times the old spec missed are
		// not caught up.
		last = now
	}
	due, missed := cronspec.LatestDue(cs, last.In(loc), now.In(loc))
	if !due.IsZero() {
		if err := r.run(ctx, sched, snaps, due, missed); err != nil {
			return ctrl.Result{}, err
		}
		last = due
	}
	wake, err := r.retainAndProtect(ctx, sched, snaps, cs, loc, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	next := cs.Next(last.In(loc)) // from the last run: "@every 1m" means a minute after it
	if !next.After(now) {
		next = cs.Next(now.In(loc))
	}
	st.NextScheduleTime = &metav1.Time{Time: next}
	setCondition(sched, storkv1.ConditionProgressing, true, "Waiting", "next run at "+next.Format(time.RFC3339))
	after := max(next.Sub(now), 0)
	if wake > 0 {
		after = min(after, wake)
	}
	return ctrl.Result{RequeueAfter: after + 100*time.Millisecond}, nil
}

// retainAndProtect applies retention, then evaluates the objectives against the Backups that
// remain; it returns when the objectives' status changes by time alone (0: never).
func (r *Reconciler) retainAndProtect(ctx context.Context, sched *storkv1.SnapshotSchedule, snaps []storkv1.Snapshot, cs cron.Schedule, loc *time.Location, now time.Time) (time.Duration, error) {
	r.applyRetention(ctx, sched, snaps, loc)
	// What a location with Object Lock must retain new objects for (see BackupLocation
	// spec.s3.objectLockRetention).
	sched.Status.BackupRetentionSpan = nil
	if span := backupPolicy(sched).Span(runGap(cs, loc, now)); span > 0 {
		sched.Status.BackupRetentionSpan = &metav1.Duration{Duration: span}
	}
	if sched.Spec.Objectives == nil {
		return r.protect(sched, nil, nil, nil, cs, loc, now), nil
	}
	backups, err := r.backups(ctx, sched)
	if err != nil {
		return 0, err
	}
	var restores storkv1.RestoreList
	if sched.Spec.Objectives.RTO != nil {
		if err := r.reader().List(ctx, &restores, client.InNamespace(sched.Namespace)); err != nil {
			return 0, fmt.Errorf("listing the Restores of namespace %s: %w", sched.Namespace, err)
		}
	}
	var drills storkv1.RestoreDrillList
	if err := r.reader().List(ctx, &drills, client.InNamespace(sched.Namespace)); err != nil {
		return 0, fmt.Errorf("listing the RestoreDrills of namespace %s: %w", sched.Namespace, err)
	}
	return r.protect(sched, backups, restores.Items, drills.Items, cs, loc, now), nil
}

// run starts (or skips) the run due at due.
func (r *Reconciler) run(ctx context.Context, sched *storkv1.SnapshotSchedule, snaps []storkv1.Snapshot, due time.Time, missed int) error {
	st := &sched.Status
	st.LastScheduleTime = &metav1.Time{Time: due}
	run := storkv1.ScheduleRun{ScheduledTime: metav1.Time{Time: due}}
	if missed > 1 {
		run.Message = fmt.Sprintf("%d runs were due since the last one (the controller was down or the schedule suspended); ran once, for the latest", missed)
	}
	if sched.Spec.ConcurrencyPolicy != storkv1.ConcurrencyAllow {
		for _, s := range snaps {
			// A Snapshot being deleted (retention) is not a run in progress.
			if s.DeletionTimestamp == nil && !final(s.Status.Phase) {
				run.Phase = "Skipped"
				run.Message = strings.TrimSpace(run.Message + " skipped: Snapshot " + s.Name + " of the previous run is still " + phaseOf(s) + " (concurrencyPolicy Forbid)")
				r.event(sched, corev1.EventTypeNormal, "RunSkipped", run.Message)
				prepend(sched, run)
				return nil
			}
		}
	}
	snap := &storkv1.Snapshot{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   sched.Namespace,
			Name:        fmt.Sprintf("%s-%d", sched.Name, due.Unix()),
			Labels:      map[string]string{},
			Annotations: map[string]string{AnnotationScheduledTime: due.UTC().Format(time.RFC3339)},
		},
		Spec: *sched.Spec.Template.Spec.DeepCopy(),
	}
	for k, v := range sched.Spec.Template.Metadata.Labels {
		snap.Labels[k] = v
	}
	for k, v := range sched.Spec.Template.Metadata.Annotations {
		snap.Annotations[k] = v
	}
	snap.Labels[LabelSchedule] = sched.Name
	snap.Labels[LabelScheduleUID] = string(sched.UID)
	if err := r.Client.Create(ctx, snap); err != nil && !apierrors.IsAlreadyExists(err) {
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
			// Transient: the status is not written, so the run is tried again (same name).
			return fmt.Errorf("creating Snapshot %s for schedule %s: %w", snap.Name, sched.Name, err)
		}
		run.Phase, run.Message = "Failed", "creating Snapshot "+snap.Name+": "+err.Error()
		r.event(sched, corev1.EventTypeWarning, "RunFailed", run.Message)
		prepend(sched, run)
		return nil
	}
	run.SnapshotName, run.Phase = snap.Name, string(storkv1.SnapshotPending)
	r.event(sched, corev1.EventTypeNormal, "RunStarted", "created Snapshot "+snap.Name)
	prepend(sched, run)
	return nil
}

// snapshots lists the schedule's Snapshots, oldest first.
func (r *Reconciler) snapshots(ctx context.Context, sched *storkv1.SnapshotSchedule) ([]storkv1.Snapshot, error) {
	var list storkv1.SnapshotList
	if err := r.reader().List(ctx, &list, client.InNamespace(sched.Namespace), client.MatchingLabels{LabelScheduleUID: string(sched.UID)}); err != nil {
		return nil, fmt.Errorf("listing the Snapshots of schedule %s: %w", sched.Name, err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return scheduledTime(&list.Items[i]).Before(scheduledTime(&list.Items[j])) })
	return list.Items, nil
}

// updateHistory copies the phases of the runs' Snapshots into the history.
func (r *Reconciler) updateHistory(sched *storkv1.SnapshotSchedule, snaps []storkv1.Snapshot) {
	st := &sched.Status
	byName := map[string]*storkv1.Snapshot{}
	for i := range snaps {
		byName[snaps[i].Name] = &snaps[i]
	}
	for i := range st.History {
		h := &st.History[i]
		s, ok := byName[h.SnapshotName]
		if h.SnapshotName == "" || !ok {
			continue
		}
		h.Phase = phaseOf(*s)
		if c := meta.FindStatusCondition(s.Status.Conditions, storkv1.ConditionReady); c != nil && final(s.Status.Phase) {
			h.Message = c.Message
		}
	}
	// The newest finished run is the last result.
	for i := len(snaps) - 1; i >= 0; i-- {
		if final(snaps[i].Status.Phase) {
			st.LastResult = string(snaps[i].Status.Phase)
			break
		}
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		if snaps[i].Status.Phase == storkv1.SnapshotReady {
			t := metav1.Time{Time: scheduledTime(&snaps[i])}
			if snaps[i].Status.CompletionTime != nil {
				t = *snaps[i].Status.CompletionTime
			}
			st.LastSuccessfulTime = &t
			break
		}
	}
}

// applyRetention applies the schedule's retention to its Snapshots and its backupRetention to
// their Backups. A deletion that fails is reported in an Event and tried again at the next
// reconcile; it does not hold up runs.
func (r *Reconciler) applyRetention(ctx context.Context, sched *storkv1.SnapshotSchedule, snaps []storkv1.Snapshot, loc *time.Location) {
	backups, err := r.backups(ctx, sched)
	if err != nil {
		r.event(sched, corev1.EventTypeWarning, "RetentionFailed", err.Error())
		return
	}
	r.applySnapshotRetention(ctx, sched, snaps, backups, loc)
	r.applyBackupRetention(ctx, sched, snaps, backups, loc)
}

// applySnapshotRetention deletes the schedule's Ready Snapshots the policy does not keep, and
// failed ones beyond the newest few. Snapshots still running are never touched, nor those whose
// Backup has not ended yet: a Snapshot is copied before it goes.
func (r *Reconciler) applySnapshotRetention(ctx context.Context, sched *storkv1.SnapshotSchedule, snaps []storkv1.Snapshot, backups []storkv1.Backup, loc *time.Location) {
	copying := map[string]bool{} // Backups by name
	for _, b := range backups {
		copying[b.Name] = b.Status.Phase != storkv1.BackupCompleted && b.Status.Phase != storkv1.BackupPartiallyFailed && b.Status.Phase != storkv1.BackupFailed
	}
	p := policy(sched.Spec.Retention)
	var ready, failed []storkv1.Snapshot
	for _, s := range snaps {
		if s.DeletionTimestamp != nil {
			continue
		}
		switch s.Status.Phase {
		case storkv1.SnapshotReady:
			ready = append(ready, s)
		case storkv1.SnapshotFailed:
			failed = append(failed, s)
		}
	}
	drop := slices.DeleteFunc(unkept(ready, p, loc, scheduledTime), func(s storkv1.Snapshot) bool {
		return s.Spec.BackupLocation != "" && (s.Status.BackupName == "" || copying[s.Status.BackupName])
	})
	if len(failed) > keepFailed {
		drop = append(drop, failed[:len(failed)-keepFailed]...)
	}
	for i := range drop {
		s := &drop[i]
		r.deleteExpired(ctx, sched, "Snapshot", s, string(s.Status.Phase), "RetentionDeleted", "retention "+p.String())
	}
}

// applyBackupRetention deletes the schedule's usable Backups (Completed or PartiallyFailed) that
// spec.backupRetention (spec.retention when unset) does not keep, judged by creation time, and
// Failed ones beyond the newest few, as for Snapshots: a failure is kept for a look whether or not
// a later backup succeeded, and a location that fails every night does not pile them up.
// Untouched: imported Backups and Backups made by hand, Backups still running or being deleted,
// and those whose Snapshot run is still going.
func (r *Reconciler) applyBackupRetention(ctx context.Context, sched *storkv1.SnapshotSchedule, snaps []storkv1.Snapshot, backups []storkv1.Backup, loc *time.Location) {
	p := backupPolicy(sched)
	running := map[string]bool{}
	for _, s := range snaps {
		if s.DeletionTimestamp == nil && !final(s.Status.Phase) {
			running[s.Name] = true
		}
	}
	var usable, failed []storkv1.Backup
	for _, b := range backups {
		if b.Status.Imported || b.Spec.SnapshotName == "" || b.DeletionTimestamp != nil || running[b.Spec.SnapshotName] {
			continue
		}
		switch b.Status.Phase {
		case storkv1.BackupCompleted, storkv1.BackupPartiallyFailed:
			usable = append(usable, b)
		case storkv1.BackupFailed:
			failed = append(failed, b)
		}
	}
	for _, b := range unkept(usable, p, loc, createdAt) {
		r.deleteExpired(ctx, sched, "Backup", &b, string(b.Status.Phase), "BackupPruned", "backup retention "+p.String())
	}
	if len(failed) > keepFailed {
		for _, b := range failed[:len(failed)-keepFailed] {
			r.deleteExpired(ctx, sched, "Backup", &b, string(b.Status.Phase), "BackupPruned", fmt.Sprintf("only the newest %d failed Backups are kept", keepFailed))
		}
	}
}

// backups lists the Backups of the schedule's Snapshots, oldest first.
func (r *Reconciler) backups(ctx context.Context, sched *storkv1.SnapshotSchedule) ([]storkv1.Backup, error) {
	var list storkv1.BackupList
	if err := r.reader().List(ctx, &list, client.InNamespace(sched.Namespace), client.MatchingLabels{LabelScheduleUID: string(sched.UID)}); err != nil {
		return nil, fmt.Errorf("listing the Backups of schedule %s: %w", sched.Name, err)
	}
	sort.SliceStable(list.Items, func(i, j int) bool {
		a, b := &list.Items[i], &list.Items[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name // names end in the scheduled time
	})
	return list.Items, nil
}

// backupPolicy is the retention of the schedule's Backups: spec.backupRetention, or
// spec.retention when unset.
func backupPolicy(sched *storkv1.SnapshotSchedule) retention.Policy {
	if sched.Spec.BackupRetention != nil {
		return policy(*sched.Spec.BackupRetention)
	}
	return policy(sched.Spec.Retention)
}

// policy is the retention package's form of a schedule's Retention.
func policy(ret storkv1.Retention) retention.Policy {
	return retention.Policy{Last: int(ret.KeepLast), Hourly: int(ret.KeepHourly), Daily: int(ret.KeepDaily), Weekly: int(ret.KeepWeekly), Monthly: int(ret.KeepMonthly)}
}

// unkept returns the items the policy does not keep, each judged by the time at gives it; an
// empty policy keeps everything.
func unkept[T any](items []T, p retention.Policy, loc *time.Location, at func(*T) time.Time) []T {
	if p.Empty() {
		return nil
	}
	times := make([]time.Time, len(items))
	for i := range items {
		times[i] = at(&items[i])
	}
	var drop []T
	for _, d := range retention.Apply(times, p, loc) {
		if !d.Keep {
			drop = append(drop, items[d.Index])
		}
	}
	return drop
}

// deleteExpired deletes an object retention does not keep (that very object: a newer one of the
// same name is left alone) and reports it on the schedule, with reason, or RetentionFailed.
func (r *Reconciler) deleteExpired(ctx context.Context, sched *storkv1.SnapshotSchedule, kind string, obj client.Object, phase, reason, why string) {
	uid := obj.GetUID()
	if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		r.event(sched, corev1.EventTypeWarning, "RetentionFailed", fmt.Sprintf("deleting %s %s: %v", kind, obj.GetName(), err))
		return
	}
	r.event(sched, corev1.EventTypeNormal, reason, fmt.Sprintf("deleted %s %s (%s): %s", kind, obj.GetName(), phase, why))
}

func createdAt(b *storkv1.Backup) time.Time { return b.CreationTimestamp.Time }

func scheduledTime(s *storkv1.Snapshot) time.Time {
	if t, err := time.Parse(time.RFC3339, s.Annotations[AnnotationScheduledTime]); err == nil {
		return t
	}
	return s.CreationTimestamp.Time
}

func final(p storkv1.SnapshotPhase) bool {
	return p == storkv1.SnapshotReady || p == storkv1.SnapshotFailed
}

func phaseOf(s storkv1.Snapshot) string {
	if s.Status.Phase == "" {
		return string(storkv1.SnapshotPending)
	}
	return string(s.Status.Phase)
}

func prepend(sched *storkv1.SnapshotSchedule, run storkv1.ScheduleRun) {
	h := append([]storkv1.ScheduleRun{run}, sched.Status.History...)
	if len(h) > historyLen {
		h = h[:historyLen]
	}
	sched.Status.History = h
}

func setCondition(sched *storkv1.SnapshotSchedule, t string, ok bool, reason, msg string) {
	conditions.Set(&sched.Status.Conditions, sched.Generation, t, ok, reason, msg)
}

func (r *Reconciler) event(obj client.Object, kind, reason, msg string) {
	conditions.Event(r.Recorder, obj, "Schedule", kind, reason, msg)
}
