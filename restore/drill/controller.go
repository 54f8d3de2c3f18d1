package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/conditions"
	"stork.dev/stork/internal/cronspec"
)

// finalizer lets a deleted drill remove the sandbox and Restore of a run still going.
const finalizer = "stork.dev/restore-drill"

// LabelKept marks a sandbox left behind on purpose (spec.keepSandbox): deleting the drill
// leaves it too.
const LabelKept = "stork.dev/drill-kept"

// Reconciler runs RestoreDrills. A run goes: choose the backup (start), make the sandbox
// namespace and a verifying Restore into it (advance), wait for the Restore to finish, then
// record the result and remove the sandbox (finish). Each step is decided from the drill's
// status and the objects that exist, so a controller restarted at any point carries on.
type Reconciler struct {
	Client client.Client
	// Reader reads the drill at the start of each reconcile (uncached: a run is not started
	// twice from a stale copy). Defaults to Client.
	Reader   client.Reader
	Recorder events.EventRecorder
	Clock    clock.Clock
	// AdminNamespace is Stork's namespace, where the drills' Restores are made: only Restores
	// there may restore one namespace into another.
	AdminNamespace string
	// Poll is how often a running drill looks at its Restore besides the watch (default 5s).
	Poll time.Duration
}

// SetupWithManager registers the controller; a change of a drill's Restore wakes the drill.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Poll == 0 {
		r.Poll = 5 * time.Second
	}
	toDrill := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		ns, name, ok := strings.Cut(o.GetAnnotations()[storkv1.AnnotationDrill], "/")
		if !ok {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("restoredrill").
		For(&storkv1.RestoreDrill{}).
		Watches(&storkv1.Restore{}, toDrill).
		Complete(r)
}

func (r *Reconciler) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	d := &storkv1.RestoreDrill{}
	if err := r.reader().Get(ctx, req.NamespacedName, d); err != nil {
		if apierrors.IsNotFound(err) {
			forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if d.DeletionTimestamp != nil {
		return ctrl.Result{}, r.remove(ctx, d)
	}
	if controllerutil.AddFinalizer(d, finalizer) {
		if err := r.Client.Update(ctx, d); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding the finalizer of RestoreDrill %s: %w", req.NamespacedName, err)
		}
	}
	orig := d.DeepCopy()
	result, err := r.step(ctx, d)
	if err != nil {
		return ctrl.Result{}, err
	}
	d.Status.ObservedGeneration = d.Generation
	if err := r.Client.Status().Patch(ctx, d, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the status of RestoreDrill %s: %w", req.NamespacedName, err)
	}
	return result, nil
}

// remove deletes the Restores and sandboxes of a deleted drill (not the ones kept on purpose),
// then lets it go.
func (r *Reconciler) remove(ctx context.Context, d *storkv1.RestoreDrill) error {
	if !controllerutil.ContainsFinalizer(d, finalizer) {
		return nil
	}
	if err := r.deleteRunObjects(ctx, d, ""); err != nil {
		return err
	}
	forget(client.ObjectKeyFromObject(d))
	controllerutil.RemoveFinalizer(d, finalizer)
	if err := r.Client.Update(ctx, d); err != nil {
		return fmt.Errorf("removing the finalizer of RestoreDrill %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

func (r *Reconciler) step(ctx context.Context, d *storkv1.RestoreDrill) (ctrl.Result, error) {
	st, now := &d.Status, r.Clock.Now()
	if st.Current != nil {
		return r.advance(ctx, d, now)
	}
	due, next, err := r.due(d, now)
	if err != nil {
		reason := cronspec.Reason(err)
		if !meta.IsStatusConditionFalse(st.Conditions, storkv1.ConditionValid) {
			conditions.Event(r.Recorder, d, "Schedule", corev1.EventTypeWarning, reason, err.Error())
		}
		conditions.Set(&st.Conditions, d.Generation, storkv1.ConditionValid, false, reason, err.Error())
		return ctrl.Result{}, nil
	}
	conditions.Set(&st.Conditions, d.Generation, storkv1.ConditionValid, true, "Valid", "the drill can run")
	st.NextRunTime = nil
	if !next.IsZero() {
		st.NextRunTime = &metav1.Time{Time: next}
	}
	if !due.IsZero() {
		wait, err := r.start(ctx, d, now)
		if err != nil || wait {
			return ctrl.Result{RequeueAfter: r.Poll}, err
		}
		if d.Spec.Schedule != "" {
			st.LastScheduleTime = &metav1.Time{Time: due}
		}
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	if next.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: next.Sub(now) + 100*time.Millisecond}, nil
}

// due says whether a run should start now (the cron time it is for; for a one-off drill, now)
// and when the next run is due (zero: none).
func (r *Reconciler) due(d *storkv1.RestoreDrill, now time.Time) (due, next time.Time, err error) {
	st := &d.Status
	if d.Spec.Schedule == "" {
		if len(st.History) == 0 && st.LastPassed == nil && !d.Spec.Suspend {
			return now, time.Time{}, nil
		}
		return time.Time{}, time.Time{}, nil
	}
	cs, loc, err := cronspec.Parse(d.Spec.Schedule, d.Spec.TimeZone)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if d.Spec.Suspend {
		return time.Time{}, time.Time{}, nil
	}
	last := d.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		last = st.LastScheduleTime.Time
	}
	due, _ = cronspec.LatestDue(cs, last.In(loc), now.In(loc))
	from := last
	if !due.IsZero() {
		from = due
	}
	next = cs.Next(from.In(loc))
	if !next.After(now) {
		next = cs.Next(now.In(loc))
	}
	return due, next, nil
}

// start begins a run: it picks the backup and names the run's sandbox and Restore, which
// advance makes. wait is true when the backup to drill is not finished yet.
func (r *Reconciler) start(ctx context.Context, d *storkv1.RestoreDrill, now time.Time) (wait bool, err error) {
	b, wait, reason, msg, err := r.chooseBackup(ctx, d)
	if err != nil || wait {
		return wait, err
	}
	run := storkv1.DrillRun{StartTime: metav1.Time{Time: now}, Result: storkv1.DrillRunning}
	if b == nil {
		r.finish(ctx, d, &run, now, storkv1.DrillFailed, reason, msg)
		return false, nil
	}
	id := runID(d.UID, now)
	run.BackupName, run.Sandbox, run.RestoreName = b.Name, "drill-"+id, "drill-"+id
	d.Status.Current = &run
	conditions.Event(r.Recorder, d, "Drill", corev1.EventTypeNormal, "DrillStarted",
		fmt.Sprintf("restoring Backup %s into sandbox namespace %s (Restore %s/%s)", b.Name, run.Sandbox, r.AdminNamespace, run.RestoreName))
	return false, nil
}

// runID names a run's sandbox and Restore: short (namespace names are at most 63 characters),
// unique per drill and start time, and the same however often it is computed.
func runID(uid types.UID, start time.Time) string {
	h := sha256.Sum256([]byte(string(uid) + "/" + strconv.FormatInt(start.UnixNano(), 10)))
	return hex.EncodeToString(h[:6])
}

// chooseBackup finds the Backup a run drills: spec.backupName, or the newest Completed Backup of
// spec.scheduleName. It returns wait while that Backup (or the schedule's only ones) are still
// being made, and (nil, reason, message) when there is nothing to drill.
func (r *Reconciler) chooseBackup(ctx context.Context, d *storkv1.RestoreDrill) (b *storkv1.Backup, wait bool, reason, msg string, err error) {
	if name := d.Spec.BackupName; name != "" {
		b = &storkv1.Backup{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: name}, b); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, false, "BackupNotFound", fmt.Sprintf("spec.backupName: Backup %s/%s does not exist", d.Namespace, name), nil
			}
			return nil, false, "", "", fmt.Errorf("reading Backup %s/%s: %w", d.Namespace, name, err)
		}
		switch b.Status.Phase {
		case storkv1.BackupCompleted:
			return b, false, "", "", nil
		case storkv1.BackupFailed, storkv1.BackupPartiallyFailed:
			return nil, false, "BackupNotCompleted", fmt.Sprintf("spec.backupName: Backup %s/%s is %s: only Completed backups are drilled", d.Namespace, name, b.Status.Phase), nil
		}
		return nil, true, "", "", nil
	}
	sched := &storkv1.SnapshotSchedule{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: d.Spec.ScheduleName}, sched); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, "ScheduleNotFound", fmt.Sprintf("spec.scheduleName: SnapshotSchedule %s/%s does not exist", d.Namespace, d.Spec.ScheduleName), nil
		}
		return nil, false, "", "", fmt.Errorf("reading SnapshotSchedule %s/%s: %w", d.Namespace, d.Spec.ScheduleName, err)
	}
	var list storkv1.BackupList
	if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace), client.MatchingLabels{storkv1.LabelScheduleUID: string(sched.UID)}); err != nil {
		return nil, false, "", "", fmt.Errorf("listing the Backups of SnapshotSchedule %s/%s: %w", d.Namespace, sched.Name, err)
	}
	running := false
	for i := range list.Items {
		c := &list.Items[i]
		switch {
		case c.Status.Phase == storkv1.BackupCompleted && c.DeletionTimestamp == nil:
			if b == nil || c.CaptureTime().After(b.CaptureTime()) || (c.CaptureTime().Equal(b.CaptureTime()) && c.Name > b.Name) {
				b = c
			}
		case c.Status.Phase != storkv1.BackupFailed && c.Status.Phase != storkv1.BackupPartiallyFailed:
			running = true
		}
	}
	if b != nil {
		return b, false, "", "", nil
	}
	if running {
		return nil, true, "", "", nil
	}
	return nil, false, "NoBackup", fmt.Sprintf("SnapshotSchedule %s/%s has no Completed Backup to drill (is spec.template.spec.backupLocation set?)", d.Namespace, sched.Name), nil
}

// advance makes the current run's sandbox and Restore if they are missing, and finishes the
// run when the Restore has finished or the run is out of time.
func (r *Reconciler) advance(ctx context.Context, d *storkv1.RestoreDrill, now time.Time) (ctrl.Result, error) {
	run := d.Status.Current
	rs := &storkv1.Restore{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.AdminNamespace, Name: run.RestoreName}, rs)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.makeRun(ctx, d, run); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("reading the drill's Restore %s/%s: %w", r.AdminNamespace, run.RestoreName, err)
	}
	switch rs.Status.Phase {
	case storkv1.RestoreCompleted, storkv1.RestorePartiallyFailed, storkv1.RestoreFailed, storkv1.RestoreCancelled:
		result, reason, msg := judge(rs, run)
		r.finish(ctx, d, run, now, result, reason, msg)
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	timeout := time.Hour
	if d.Spec.Timeout != nil {
		timeout = d.Spec.Timeout.Duration
	}
	if left := run.StartTime.Add(timeout).Sub(now); left <= 0 {
		p := rs.Status.Progress
		r.finish(ctx, d, run, now, storkv1.DrillFailed, "Timeout", fmt.Sprintf(
			"the restore of Backup %s had not finished after spec.timeout %s (%d of %d bytes restored)", run.BackupName, timeout, p.BytesDone, p.BytesTotal))
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	} else if left < r.Poll {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	return ctrl.Result{RequeueAfter: r.Poll}, nil
}

// makeRun creates the run's sandbox namespace, then its Restore: the Backup's namespace mapped
// to the sandbox, every volume verified.
func (r *Reconciler) makeRun(ctx context.Context, d *storkv1.RestoreDrill, run *storkv1.DrillRun) error {
	labels := map[string]string{storkv1.LabelDrillUID: string(d.UID)}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: run.Sandbox, Labels: labels,
		Annotations: map[string]string{storkv1.AnnotationDrill: d.Namespace + "/" + d.Name}}}
	if err := r.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the drill's sandbox namespace %s: %w", run.Sandbox, err)
	}
	b := &storkv1.Backup{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: run.BackupName}, b); err != nil {
		return fmt.Errorf("reading Backup %s/%s: %w", d.Namespace, run.BackupName, err)
	}
	rs := &storkv1.Restore{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.AdminNamespace, Name: run.RestoreName, Labels: labels,
			Annotations: map[string]string{storkv1.AnnotationDrill: d.Namespace + "/" + d.Name}},
		Spec: storkv1.RestoreSpec{
			Source:              storkv1.RestoreSource{Namespace: d.Namespace, BackupName: run.BackupName},
			NamespaceMapping:    map[string]string{sourceNamespace(b): run.Sandbox},
			StorageClassMapping: d.Spec.StorageClassMapping,
			ZoneMapping:         d.Spec.ZoneMapping,
			VolumesOnly:         d.Spec.VolumesOnly,
			Hooks:               d.Spec.Hooks,
			Verify:              true,
		},
	}
	if err := r.Client.Create(ctx, rs); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the drill's Restore %s/%s: %w", r.AdminNamespace, run.RestoreName, err)
	}
	return nil
}

// sourceNamespace is the namespace a Backup's application lived in when it was taken: the
// Backup's own, or for one imported from another cluster, the one its record names.
func sourceNamespace(b *storkv1.Backup) string {
	if ns := b.Status.SourceNamespace; ns != "" {
		return ns
	}
	return b.Namespace
}

// judge reads a finished Restore: Passed only when it Completed and every volume was verified.
// The RTO is the Restore's time less its longest verification (volumes verify in parallel, and
// a real recovery need not wait for one).
func judge(rs *storkv1.Restore, run *storkv1.DrillRun) (storkv1.DrillResult, string, string) {
	var longest time.Duration
	var failed []string
	for _, v := range rs.Status.Volumes {
		if v.Verification == nil {
			if v.Phase == storkv1.VolumeSucceeded {
				failed = append(failed, fmt.Sprintf("volume %s: restored but not verified", v.SourceClaim))
			} else {
				failed = append(failed, fmt.Sprintf("volume %s: %s: %s", v.SourceClaim, v.Reason, v.Message))
			}
			continue
		}
		run.VerifiedFiles += v.Verification.Files
		run.VerifiedBytes += v.Verification.Bytes
		longest = max(longest, v.Verification.Duration.Duration)
	}
	if rs.Status.Phase != storkv1.RestoreCompleted || len(failed) > 0 {
		reason, msg := "RestoreFailed", "Restore "+rs.Name+" is "+string(rs.Status.Phase)
		if c := meta.FindStatusCondition(rs.Status.Conditions, storkv1.ConditionReady); c != nil && c.Status == metav1.ConditionFalse {
			reason, msg = c.Reason, msg+": "+c.Message
		}
		if len(failed) > 0 {
			msg += "; " + strings.Join(failed, "; ")
		}
		return storkv1.DrillFailed, reason, msg
	}
	end := time.Now()
	if rs.Status.CompletionTime != nil {
		end = rs.Status.CompletionTime.Time
	}
	run.RTO = &metav1.Duration{Duration: max(end.Sub(run.StartTime.Time)-longest, 0).Round(time.Millisecond)}
	return storkv1.DrillPassed, "Verified", fmt.Sprintf("Backup %s restored in %s and verified: %d files, %d bytes equal to the backup",
		run.BackupName, run.RTO.Duration, run.VerifiedFiles, run.VerifiedBytes)
}

// finish ends a run: it removes the sandbox (unless kept), records the result in the history,
// the Passed condition, the Backup's Verified condition, an Event and the metrics.
func (r *Reconciler) finish(ctx context.Context, d *storkv1.RestoreDrill, run *storkv1.DrillRun, now time.Time, result storkv1.DrillResult, reason, msg string) {
	st := &d.Status
	run.CompletionTime, run.Result, run.Reason, run.Message = &metav1.Time{Time: now}, result, reason, msg
	keep := d.Spec.KeepSandbox == storkv1.KeepAlways || (d.Spec.KeepSandbox == storkv1.KeepOnFailure && result == storkv1.DrillFailed)
	if run.Sandbox != "" {
		if keep {
			run.SandboxKept = true
			r.keep(ctx, d, run)
		} else if err := r.deleteRunObjects(ctx, d, run.RestoreName); err != nil {
			// Deleting the drill, or its next run, removes what is left (same labels).
			conditions.Event(r.Recorder, d, "Cleanup", corev1.EventTypeWarning, "CleanupFailed", err.Error())
		}
	}
	st.Current = nil
	limit := int(d.Spec.HistoryLimit)
	if limit <= 0 {
		limit = 5
	}
	st.History = append([]storkv1.DrillRun{*run}, st.History...)
	if len(st.History) > limit {
		st.History = st.History[:limit]
	}
	passed := result == storkv1.DrillPassed
	if passed {
		st.LastPassed = run.DeepCopy()
	}
	conditions.Set(&st.Conditions, d.Generation, storkv1.ConditionPassed, passed, reason, msg)
	kind, eventReason := corev1.EventTypeNormal, "DrillPassed"
	if !passed {
		kind, eventReason = corev1.EventTypeWarning, "DrillFailed"
	}
	conditions.Event(r.Recorder, d, "Drill", kind, eventReason, msg)
	if run.BackupName != "" {
		r.markBackup(ctx, d, run, passed, reason, msg)
	}
	record(client.ObjectKeyFromObject(d), run)
}

// markBackup sets the drilled Backup's Verified condition, so that a backup that failed its
// drill says so wherever it is listed; the patch is optimistic, never undoing another writer.
func (r *Reconciler) markBackup(ctx context.Context, d *storkv1.RestoreDrill, run *storkv1.DrillRun, passed bool, reason, msg string) {
	b := &storkv1.Backup{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: run.BackupName}, b); err != nil {
		return // gone: nothing to mark
	}
	orig := b.DeepCopy()
	conditions.Set(&b.Status.Conditions, b.Generation, storkv1.ConditionVerified, passed, reason, "RestoreDrill "+d.Name+": "+msg)
	if err := r.Client.Status().Patch(ctx, b, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		conditions.Event(r.Recorder, d, "Drill", corev1.EventTypeWarning, "MarkFailed", fmt.Sprintf("recording the result on Backup %s: %v", b.Name, err))
		return
	}
	if !passed {
		conditions.Event(r.Recorder, b, "Drill", corev1.EventTypeWarning, "DrillFailed", "RestoreDrill "+d.Name+": "+msg)
	}
}

// keep labels a kept sandbox, so that deleting the drill leaves it.
func (r *Reconciler) keep(ctx context.Context, d *storkv1.RestoreDrill, run *storkv1.DrillRun) {
	for _, obj := range []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: run.Sandbox}},
		&storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: r.AdminNamespace, Name: run.RestoreName}}} {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+LabelKept+`":"true"}}}`))
		if err := r.Client.Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
			conditions.Event(r.Recorder, d, "Cleanup", corev1.EventTypeWarning, "KeepFailed", fmt.Sprintf("labelling %s as kept: %v", obj.GetName(), err))
		}
	}
}

// deleteRunObjects deletes the drill's sandboxes and Restores that were not kept: those of one
// run (restoreName, which is also its sandbox's name) or, with "", all of them.
func (r *Reconciler) deleteRunObjects(ctx context.Context, d *storkv1.RestoreDrill, restoreName string) error {
	sel := client.MatchingLabels{storkv1.LabelDrillUID: string(d.UID)}
	var restores storkv1.RestoreList
	if err := r.Client.List(ctx, &restores, client.InNamespace(r.AdminNamespace), sel); err != nil {
		return fmt.Errorf("listing the Restores of RestoreDrill %s/%s: %w", d.Namespace, d.Name, err)
	}
	var spaces corev1.NamespaceList
	if err := r.Client.List(ctx, &spaces, sel); err != nil {
		return fmt.Errorf("listing the sandboxes of RestoreDrill %s/%s: %w", d.Namespace, d.Name, err)
	}
	var objs []client.Object
	for i := range restores.Items {
		objs = append(objs, &restores.Items[i])
	}
	for i := range spaces.Items {
		objs = append(objs, &spaces.Items[i])
	}
	for _, o := range objs {
		if o.GetLabels()[LabelKept] == "true" || (restoreName != "" && o.GetName() != restoreName) {
			continue
		}
		if err := r.Client.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s of RestoreDrill %s/%s: %w", o.GetName(), d.Namespace, d.Name, err)
		}
	}
	return nil
}
