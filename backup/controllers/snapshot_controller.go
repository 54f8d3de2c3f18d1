package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/hooks"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/conditions"
	"stork.dev/stork/internal/crashpoint"
)

// SnapshotFinalizer keeps a Snapshot until the driver's snapshot data is deleted (or retained,
// by its deletion policy).
const SnapshotFinalizer = "stork.dev/snapshot-data"

// Metrics of snapshots, registered by RegisterMetrics (cmd/stork: the controller's metrics
// endpoint).
var (
	snapshotsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_snapshots_total", Help: "Snapshots that reached a final phase, by phase.",
	}, []string{"phase"})
	snapshotDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "stork_snapshot_duration_seconds", Help: "Time from a Snapshot's start to its final phase.",
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 14),
	})
	snapshotBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stork_snapshot_bytes_total", Help: "Bytes captured by Snapshots that became Ready.",
	})
	hookRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_snapshot_hook_runs_total", Help: "Hook runs in pods, by stage and result.",
	}, []string{"stage", "result"})
)

// SnapshotReconciler captures Snapshots through the drivers: it resolves the claims once, runs
// the pre-hooks, asks each driver for a group snapshot of its volumes, and when every volume is
// final runs the post-hooks and sets the final phase. Every step is recorded in status before
// the next one starts, so a restarted controller continues where the last one stopped (hooks
// run at least once).
type SnapshotReconciler struct {
	Client client.Client
	// Reader reads the Snapshot at the start of each reconcile. Give it an uncached reader
	// (the manager's APIReader): hooks must not run again because the cache had not yet seen
	// the status that recorded them. Defaults to Client.
	Reader   client.Reader
	Drivers  *drivers.Set
	Hooks    *hooks.Runner
	Recorder events.EventRecorder
	// Poll is how often unfinished work is looked at again (default 2s); task status changes
	// do not wake this controller, since tasks may belong to any driver.
	Poll time.Duration
	// PendingTimeout fails volumes whose capture has not started this long after the Snapshot
	// did (default 10m; a dead agent), so that post-hooks run and the application resumes.
	PendingTimeout time.Duration
}

// SetupWithManager registers the controller.
func (r *SnapshotReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Poll == 0 {
		r.Poll = 2 * time.Second
	}
	if r.PendingTimeout == 0 {
		r.PendingTimeout = 10 * time.Minute
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("snapshot").
		For(&storkv1.Snapshot{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

func (r *SnapshotReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	snap := &storkv1.Snapshot{}
	if err := r.reader().Get(ctx, req.NamespacedName, snap); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if snap.DeletionTimestamp != nil {
		return r.finalize(ctx, snap)
	}
	if !controllerutil.ContainsFinalizer(snap, SnapshotFinalizer) {
		controllerutil.AddFinalizer(snap, SnapshotFinalizer)
		return ctrl.Result{}, r.Client.Update(ctx, snap)
	}
	if snap.Status.Phase == storkv1.SnapshotReady || snap.Status.Phase == storkv1.SnapshotFailed {
		return ctrl.Result{}, nil
	}
	orig := snap.DeepCopy()
	result, err := r.step(ctx, snap)
	if err != nil {
		return ctrl.Result{}, err
	}
	snap.Status.ObservedGeneration = snap.Generation
	// No optimistic lock: the Snapshot was read from the API server just now, only this
	// controller writes its status, and a conflict with a label edit must not make hooks run
	// again.
	if err := r.Client.Status().Patch(ctx, snap, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the status of Snapshot %s: %w", req.NamespacedName, err)
	}
	if snap.Status.Phase == storkv1.SnapshotReady || snap.Status.Phase == storkv1.SnapshotFailed {
		snapshotsFinished.WithLabelValues(string(snap.Status.Phase)).Inc()
		if snap.Status.StartTime != nil {
			snapshotDuration.Observe(time.Since(snap.Status.StartTime.Time).Seconds())
		}
		if snap.Status.Phase == storkv1.SnapshotReady {
			snapshotBytes.Add(float64(snap.Status.Progress.BytesTotal))
		}
	}
	return result, nil
}

func (r *SnapshotReconciler) reader() client.Reader {
	if r.Reader != nil {
		return r.Reader
	}
	return r.Client
}

// step moves the Snapshot one stage on, changing snap.Status only.
func (r *SnapshotReconciler) step(ctx context.Context, snap *storkv1.Snapshot) (ctrl.Result, error) {
	st := &snap.Status
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime, st.Phase = &now, storkv1.SnapshotInProgress
		r.event(snap, corev1.EventTypeNormal, "Started", "capturing the volumes of "+describeSource(snap.Spec.Source))
	}

	// 1. Which volumes: decided once, and kept.
	if !meta.IsStatusConditionTrue(st.Conditions, storkv1.ConditionValid) {
		vols, bad, err := r.resolve(ctx, snap)
		if err != nil {
			return ctrl.Result{}, err
		}
		if bad != nil {
			r.setCondition(snap, storkv1.ConditionValid, false, bad.reason, bad.message)
			r.finish(snap, storkv1.SnapshotFailed, bad.reason, bad.message)
			return ctrl.Result{}, nil
		}
		st.Volumes = vols
		r.setCondition(snap, storkv1.ConditionValid, true, "ClaimsResolved", fmt.Sprintf("%d claims to capture", len(vols)))
		r.setCondition(snap, storkv1.ConditionProgressing, true, "RunningPreHooks", "running pre-hooks")
		return ctrl.Result{Requeue: true}, nil
	}

	// 2. Pre-hooks, once; a failing one with onError Fail skips the capture.
	if !hooksRan(snap.Spec.PreHooks, st.Hooks, storkv1.HookPre) {
		if failed := r.runHooks(ctx, snap, snap.Spec.PreHooks, storkv1.HookPre); failed != "" {
			for i := range st.Volumes {
				v := &st.Volumes[i]
				v.Phase, v.Reason, v.Message = storkv1.VolumeFailed, "PreHookFailed", "not captured: "+failed
			}
		}
		r.setCondition(snap, storkv1.ConditionProgressing, true, "Capturing", "capturing the volumes")
		return ctrl.Result{Requeue: true}, nil
	}

	// 3. Capture, driver by driver; each call is level-based.
	if !allFinal(st.Volumes) {
		if err := r.capture(ctx, snap); err != nil {
			return ctrl.Result{}, err
		}
		r.sumProgress(snap)
		if !allFinal(st.Volumes) {
			return ctrl.Result{RequeueAfter: r.Poll}, nil
		}
	}

	// 4. Post-hooks, also after a failed capture (to thaw the application), then the verdict.
	postFailed := ""
	if !hooksRan(snap.Spec.PostHooks, st.Hooks, storkv1.HookPost) {
		postFailed = r.runHooks(ctx, snap, snap.Spec.PostHooks, storkv1.HookPost)
	}
	r.sumProgress(snap)
	var bad []string
	for _, v := range st.Volumes {
		if v.Phase != storkv1.VolumeSucceeded {
			bad = append(bad, fmt.Sprintf("%s: %s", v.ClaimName, v.Message))
		}
	}
	switch {
	case len(bad) > 0:
		r.finish(snap, storkv1.SnapshotFailed, "CaptureFailed", fmt.Sprintf("%d of %d volumes were not captured: %s", len(bad), len(st.Volumes), strings.Join(bad, "; ")))
	case postFailed != "":
		r.finish(snap, storkv1.SnapshotFailed, "PostHookFailed", postFailed)
	default:
		if err := r.startBackup(ctx, snap); err != nil {
			return ctrl.Result{}, err
		}
		r.finish(snap, storkv1.SnapshotReady, "Captured", fmt.Sprintf("%d volumes captured, %d bytes", len(st.Volumes), st.Progress.BytesTotal))
	}
	return ctrl.Result{}, nil
}

// startBackup creates the Backup that copies a Snapshot naming a backupLocation. The Backup is
// not owned by the Snapshot: a backup outlives the snapshot it was made from.
func (r *SnapshotReconciler) startBackup(ctx context.Context, snap *storkv1.Snapshot) error {
	if snap.Spec.BackupLocation == "" {
		return nil
	}
	lbls := map[string]string{"stork.dev/snapshot": snap.Name}
	// The schedule that made the Snapshot applies its backupRetention to the Backups that
	// carry its UID (schedules.LabelSchedule and LabelScheduleUID; named here, as schedules
	// is not imported by this package).
	for _, k := range []string{"stork.dev/schedule", "stork.dev/schedule-uid"} {
		if v, ok := snap.Labels[k]; ok {
			lbls[k] = v
		}
	}
	// Named like the Snapshot, unless a Backup of that name exists that is not this Snapshot's
	// (one sync imported from another cluster running the same schedule, an old one): then
	// with the Snapshot's UID appended. The annotation tells this Snapshot's Backup apart.
	captured := snap.CreationTimestamp.Time
	if snap.Status.StartTime != nil {
		captured = snap.Status.StartTime.Time
	}
	for _, name := range []string{snap.Name, fmt.Sprintf("%s-%.8s", snap.Name, snap.UID)} {
		b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: snap.Namespace, Name: name, Labels: lbls,
			Annotations: map[string]string{SnapshotUIDAnnotation: string(snap.UID), storkv1.AnnotationCaptureTime: captured.UTC().Format(time.RFC3339)}},
			Spec: storkv1.BackupSpec{SnapshotName: snap.Name, BackupLocation: snap.Spec.BackupLocation}}
		err := r.Client.Create(ctx, b)
		if apierrors.IsAlreadyExists(err) {
			err = r.reader().Get(ctx, client.ObjectKeyFromObject(b), b)
			if err == nil && b.Annotations[SnapshotUIDAnnotation] != string(snap.UID) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("creating Backup %s/%s: %w", snap.Namespace, name, err)
		}
		crashpoint.Here(CrashBackupCreated)
		snap.Status.BackupName = name
		return nil
	}
	return fmt.Errorf("Backups %s and %s-%.8s exist and belong to other Snapshots", snap.Name, snap.Name, snap.UID)
}

// Crash points of a Snapshot (see internal/crashpoint), before its status records the step.
const (
	// CrashCaptureRequested: the drivers were asked to capture the volumes.
	CrashCaptureRequested = "snapshot/capture-requested"
	// CrashBackupCreated: the Snapshot's Backup exists, the Snapshot does not name it yet.
	CrashBackupCreated = "snapshot/backup-created"
)

// SnapshotUIDAnnotation on a Backup names the Snapshot it was made for.
const SnapshotUIDAnnotation = "stork.dev/snapshot-uid"

// invalidSpec says why a spec cannot be acted on.
type invalidSpec struct{ reason, message string }

// resolve finds the claims of the source and the driver of each, or says why the Snapshot
// cannot be taken.
func (r *SnapshotReconciler) resolve(ctx context.Context, snap *storkv1.Snapshot) ([]storkv1.SnapshotVolumeStatus, *invalidSpec, error) {
	invalid := func(reason, format string, args ...any) ([]storkv1.SnapshotVolumeStatus, *invalidSpec, error) {
		return nil, &invalidSpec{reason, fmt.Sprintf(format, args...)}, nil
	}
	ns, src := snap.Namespace, snap.Spec.Source
	var claims []corev1.PersistentVolumeClaim
	switch {
	case src.ClaimName != "":
		pvc := &corev1.PersistentVolumeClaim{}
		// Failures decided here are final: read the API server, not a cache that may not
		// have seen a claim created together with the Snapshot.
		err := r.reader().Get(ctx, client.ObjectKey{Namespace: ns, Name: src.ClaimName}, pvc)
		if apierrors.IsNotFound(err) {
			return invalid("ClaimNotFound", "spec.source.claimName: PersistentVolumeClaim %s/%s does not exist", ns, src.ClaimName)
		}
		if err != nil {
			return nil, nil, err
		}
		claims = append(claims, *pvc)
	default:
		sel := labels.Everything()
		if src.Selector != nil {
			var err error
			if sel, err = metav1.LabelSelectorAsSelector(src.Selector); err != nil {
				return invalid("InvalidSelector", "spec.source.selector: %v", err)
			}
		}
		var list corev1.PersistentVolumeClaimList
		if err := r.reader().List(ctx, &list, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, nil, err
		}
		claims = list.Items
		if len(claims) == 0 {
			return invalid("NoClaims", "spec.source selects no PersistentVolumeClaim in namespace %s", ns)
		}
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i].Name < claims[j].Name })
	var out []storkv1.SnapshotVolumeStatus
	for i := range claims {
		pvc := &claims[i]
		if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
			return invalid("ClaimNotBound", "PersistentVolumeClaim %s/%s is %s, not Bound: it has no data to capture yet; create the Snapshot again once it is Bound", ns, pvc.Name, pvc.Status.Phase)
		}
		v, err := r.volume(ctx, pvc)
		if err != nil {
			return nil, nil, err
		}
		d, err := r.Drivers.For(v)
		if err != nil {
			return invalid("NoDriver", "%v", err)
		}
		if _, ok := drivers.As[drivers.Snapshotter](d); !ok {
			return invalid("SnapshotsNotSupported", "PersistentVolumeClaim %s/%s belongs to driver %s, which cannot take snapshots", ns, pvc.Name, d.Name())
		}
		vs := storkv1.SnapshotVolumeStatus{ClaimName: pvc.Name, VolumeName: v.PV.Name, Driver: d.Name(),
			StorageClassName: ptr.Deref(pvc.Spec.StorageClassName, ""), AccessModes: pvc.Spec.AccessModes, Phase: storkv1.VolumePending}
		if q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			vs.Capacity = &q
		}
		if loc, err := d.Locate(ctx, v); err == nil {
			vs.Topology = loc.Topology
			if len(loc.Replicas) > 0 {
				vs.Node = loc.Replicas[0].Node
				vs.Topology = loc.Replicas[0].Topology
			}
		}
		out = append(out, vs)
	}
	return out, nil, nil
}

// volume reads a bound claim's PersistentVolume and StorageClass.
func (r *SnapshotReconciler) volume(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (drivers.Volume, error) {
	v := drivers.Volume{Claim: pvc, PV: &corev1.PersistentVolume{}}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, v.PV); err != nil {
		return v, fmt.Errorf("reading PersistentVolume %s of claim %s/%s: %w", pvc.Spec.VolumeName, pvc.Namespace, pvc.Name, err)
	}
	if sc := ptr.Deref(pvc.Spec.StorageClassName, ""); sc != "" {
		v.StorageClass = &storagev1.StorageClass{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: sc}, v.StorageClass); err != nil {
			v.StorageClass = nil // a claim may name a class that does not exist
		}
	}
	return v, nil
}

// capture asks each driver about its volumes that are not final yet.
func (r *SnapshotReconciler) capture(ctx context.Context, snap *storkv1.Snapshot) error {
	st := &snap.Status
	byDriver := map[string][]int{}
	var order []string
	for i, v := range st.Volumes {
		if v.Phase == storkv1.VolumeSucceeded || v.Phase == storkv1.VolumeFailed {
			continue
		}
		if _, ok := byDriver[v.Driver]; !ok {
			order = append(order, v.Driver)
		}
		byDriver[v.Driver] = append(byDriver[v.Driver], i)
	}
	for _, name := range order {
		idx := byDriver[name]
		d, ok := r.Drivers.Get(name)
		sn, isSnap := drivers.As[drivers.Snapshotter](d)
		if !ok || !isSnap {
			for _, i := range idx {
				v := &st.Volumes[i]
				v.Phase, v.Reason, v.Message = storkv1.VolumeFailed, "DriverUnavailable", "driver "+name+" is not enabled in this Stork"
			}
			continue
		}
		req := drivers.SnapshotRequest{ID: string(snap.UID), Namespace: snap.Namespace, Owner: ownerRef(snap)}
		for _, i := range idx {
			pvc := &corev1.PersistentVolumeClaim{}
			if err := r.Client.Get(ctx, client.ObjectKey{Namespace: snap.Namespace, Name: st.Volumes[i].ClaimName}, pvc); err != nil {
				pvc = nil // deleted since: the volume is still there, and so is its data
			}
			v := drivers.Volume{Claim: pvc, PV: &corev1.PersistentVolume{}}
			if err := r.Client.Get(ctx, client.ObjectKey{Name: st.Volumes[i].VolumeName}, v.PV); err != nil {
				if !apierrors.IsNotFound(err) {
					return err
				}
				vs := &st.Volumes[i]
				vs.Phase, vs.Reason, vs.Message = storkv1.VolumeFailed, "VolumeGone", "PersistentVolume "+vs.VolumeName+" was deleted before it was captured"
				if err := r.abandonCapture(ctx, snap, vs); err != nil {
					return err
				}
				continue
			}
			req.Volumes = append(req.Volumes, v)
		}
		if len(req.Volumes) == 0 {
			continue
		}
		statuses, err := sn.Snapshot(ctx, req)
		if err != nil {
			return fmt.Errorf("driver %s: snapshot of %s/%s: %w", name, snap.Namespace, snap.Name, err)
		}
		crashpoint.Here(CrashCaptureRequested)
		for _, s := range statuses {
			for i := range st.Volumes {
				if v := &st.Volumes[i]; v.VolumeName == s.VolumeName {
					before := v.Phase
					v.Phase, v.SnapshotID, v.SizeBytes, v.Progress, v.Reason, v.Message = s.Phase, s.SnapshotID, s.SizeBytes, s.Progress, s.Reason, s.Message
					if s.Node != "" {
						v.Node = s.Node
					}
					if v.Phase == storkv1.VolumePending && st.StartTime != nil && time.Since(st.StartTime.Time) > r.PendingTimeout {
						v.Phase, v.Reason = storkv1.VolumeFailed, "NotStarted"
						v.Message = fmt.Sprintf("not started within %s: %s", r.PendingTimeout, s.Message)
						if err := r.abandonCapture(ctx, snap, v); err != nil {
							return err
						}
					}
					if v.Phase == storkv1.VolumeFailed && before != storkv1.VolumeFailed {
						r.event(snap, corev1.EventTypeWarning, "VolumeFailed", fmt.Sprintf("claim %s: %s", v.ClaimName, v.Message))
					}
				}
			}
		}
	}
	return nil
}

// abandonCapture deletes the capture tasks of a volume the Snapshot gave up on (its volume
// vanished, or the capture never started in time): a capture that ran, or would run later,
// makes a node snapshot that nothing would ever use or delete. The agent stops a task deleted
// while it runs, and its sweeper removes what a gone task made.
func (r *SnapshotReconciler) abandonCapture(ctx context.Context, snap *storkv1.Snapshot, v *storkv1.SnapshotVolumeStatus) error {
	var tasks storkv1.VolumeTaskList
	if err := r.Client.List(ctx, &tasks, client.InNamespace(snap.Namespace)); err != nil {
		return fmt.Errorf("listing the capture tasks of Snapshot %s/%s: %w", snap.Namespace, snap.Name, err)
	}
	for i := range tasks.Items {
		t := &tasks.Items[i]
		if t.Spec.Type != storkv1.TaskSnapshot || t.Spec.VolumeName != v.VolumeName || !metav1.IsControlledBy(t, snap) {
			continue
		}
		if err := r.Client.Delete(ctx, t); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting capture task %s/%s of claim %s: %w", t.Namespace, t.Name, v.ClaimName, err)
		}
		r.event(snap, corev1.EventTypeWarning, EventCaptureAbandoned, fmt.Sprintf("claim %s (%s): capture task %s deleted; the node's agent removes anything it made",
			v.ClaimName, v.Reason, t.Name))
	}
	return nil
}

// EventCaptureAbandoned is the reason of the Event saying a failed volume's capture task was
// deleted.
const EventCaptureAbandoned = "CaptureAbandoned"

// runHooks runs hooks in order, records their results and returns why the Snapshot fails
// because of them ("" if it does not).
func (r *SnapshotReconciler) runHooks(ctx context.Context, snap *storkv1.Snapshot, hs []storkv1.Hook, stage storkv1.HookStage) string {
	var failed []string
	for _, h := range hs {
		results := r.Hooks.Run(ctx, snap.Namespace, h, stage)
		snap.Status.Hooks = append(snap.Status.Hooks, results...)
		for _, res := range results {
			outcome := "succeeded"
			if !res.Succeeded {
				outcome = "failed"
				r.event(snap, corev1.EventTypeWarning, "HookFailed", fmt.Sprintf("%s hook %s in pod %s: %s", strings.ToLower(string(stage)), h.Name, res.Pod, res.Message))
			}
			hookRuns.WithLabelValues(string(stage), outcome).Inc()
		}
		if hooks.Failed(h, results) {
			for _, res := range results {
				if !res.Succeeded {
					failed = append(failed, fmt.Sprintf("%s hook %s failed in pod %s: %s", strings.ToLower(string(stage)), h.Name, res.Pod, res.Message))
				}
			}
			if stage == storkv1.HookPre {
				break // the remaining pre-hooks would prepare a capture that will not happen
			}
		}
	}
	return strings.Join(failed, "; ")
}

// hooksRan reports whether every hook has a result of the stage.
func hooksRan(hs []storkv1.Hook, results []storkv1.HookResult, stage storkv1.HookStage) bool {
	for _, h := range hs {
		found := false
		for _, r := range results {
			found = found || (r.Name == h.Name && r.Stage == stage)
		}
		if !found {
			// A pre-hook skipped after an earlier one failed counts as run.
			return stage == storkv1.HookPre && preHookFailed(results)
		}
	}
	return true
}

func preHookFailed(results []storkv1.HookResult) bool {
	for _, r := range results {
		if r.Stage == storkv1.HookPre && !r.Succeeded {
			return true
		}
	}
	return false
}

func allFinal(vs []storkv1.SnapshotVolumeStatus) bool {
	for _, v := range vs {
		if v.Phase != storkv1.VolumeSucceeded && v.Phase != storkv1.VolumeFailed {
			return false
		}
	}
	return true
}

func (r *SnapshotReconciler) sumProgress(snap *storkv1.Snapshot) {
	p := storkv1.Progress{ItemsTotal: int64(len(snap.Status.Volumes))}
	for _, v := range snap.Status.Volumes {
		p.BytesDone += v.Progress.BytesDone
		p.BytesTotal += max(v.Progress.BytesTotal, v.SizeBytes)
		if v.Phase == storkv1.VolumeSucceeded || v.Phase == storkv1.VolumeFailed {
			p.ItemsDone++
		}
	}
	snap.Status.Progress = p
}

func (r *SnapshotReconciler) finish(snap *storkv1.Snapshot, phase storkv1.SnapshotPhase, reason, msg string) {
	now := metav1.Now()
	snap.Status.Phase, snap.Status.CompletionTime = phase, &now
	conditions.Finish(&snap.Status.Conditions, snap.Generation, r.Recorder, snap, "Capture", phase == storkv1.SnapshotReady, reason, string(phase), msg)
}

func (r *SnapshotReconciler) setCondition(snap *storkv1.Snapshot, t string, ok bool, reason, msg string) {
	conditions.Set(&snap.Status.Conditions, snap.Generation, t, ok, reason, msg)
}

func (r *SnapshotReconciler) event(obj client.Object, kind, reason, msg string) {
	conditions.Event(r.Recorder, obj, "Capture", kind, reason, msg)
}

// finalize deletes the driver's snapshot data (policy Delete), after any capture still running
// has finished (its data would otherwise be left behind), then lets the Snapshot go.
func (r *SnapshotReconciler) finalize(ctx context.Context, snap *storkv1.Snapshot) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(snap, SnapshotFinalizer) {
		return ctrl.Result{}, nil
	}
	orig := snap.DeepCopy()
	snap.Status.Phase = storkv1.SnapshotDeleting
	// Deleted between its pre-hooks and its post-hooks: resume the application first.
	if len(snap.Spec.PostHooks) > 0 && snap.Status.StartTime != nil && hasStage(snap.Status.Hooks, storkv1.HookPre) &&
		!hooksRan(snap.Spec.PostHooks, snap.Status.Hooks, storkv1.HookPost) {
		r.runHooks(ctx, snap, snap.Spec.PostHooks, storkv1.HookPost)
	}
	pending, err := r.deleteData(ctx, snap)
	if err != nil {
		r.setCondition(snap, storkv1.ConditionReady, false, "DeleteFailed", err.Error())
		r.event(snap, corev1.EventTypeWarning, "DeleteFailed", err.Error())
	}
	if perr := r.Client.Status().Patch(ctx, snap, client.MergeFrom(orig)); perr != nil && !apierrors.IsNotFound(perr) {
		return ctrl.Result{}, perr
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	if pending != "" {
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	controllerutil.RemoveFinalizer(snap, SnapshotFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Update(ctx, snap))
}

// deleteData returns what it still waits for, or "" when nothing is left to delete.
func (r *SnapshotReconciler) deleteData(ctx context.Context, snap *storkv1.Snapshot) (string, error) {
	// A Backup copying the snapshot reads the object and the data: both stay until it is done.
	if copying, err := r.backupCopying(ctx, snap); err != nil || copying != "" {
		if copying != "" {
			r.setCondition(snap, storkv1.ConditionReady, false, "InUse", "deleting once Backup "+copying+" has copied it")
		}
		return copying, err
	}
	if snap.Spec.DeletionPolicy == storkv1.DeletionRetain {
		return "", nil
	}
	if !allFinal(snap.Status.Volumes) {
		if c := meta.FindStatusCondition(snap.Status.Conditions, storkv1.ConditionProgressing); c != nil && c.Reason == "Capturing" {
			// Captures may be running: wait for them, or their data would be left behind.
			if err := r.capture(ctx, snap); err != nil {
				return "", err
			}
			if !allFinal(snap.Status.Volumes) {
				r.setCondition(snap, storkv1.ConditionReady, false, "WaitingForCapture", "deleting once the capture in progress has finished")
				return "capture", nil
			}
		} else {
			for i := range snap.Status.Volumes {
				if v := &snap.Status.Volumes[i]; v.Phase != storkv1.VolumeSucceeded && v.Phase != storkv1.VolumeFailed {
					v.Phase, v.Reason, v.Message = storkv1.VolumeFailed, "Deleted", "the Snapshot was deleted before this volume was captured"
				}
			}
		}
	}
	if user, err := r.restoreUsing(ctx, snap); err != nil || user != "" {
		if user != "" {
			r.setCondition(snap, storkv1.ConditionReady, false, "InUse", "deleting once Restore "+user+" has finished with it")
		}
		return user, err
	}
	var waiting []string
	var errs []error
	for i := range snap.Status.Volumes {
		v := &snap.Status.Volumes[i]
		if v.SnapshotID == "" {
			continue
		}
		d, ok := r.Drivers.Get(v.Driver)
		sn, isSnap := drivers.As[drivers.Snapshotter](d)
		if !ok || !isSnap {
			errs = append(errs, fmt.Errorf("claim %s: driver %s is not enabled, so snapshot %s cannot be deleted (remove the finalizer %s to let the object go anyway)", v.ClaimName, v.Driver, v.SnapshotID, SnapshotFinalizer))
			continue
		}
		done, err := sn.DeleteSnapshot(ctx, drivers.SnapshotRef{Namespace: snap.Namespace, VolumeName: v.VolumeName, SnapshotID: v.SnapshotID, Node: v.Node})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("claim %s: %w", v.ClaimName, err))
		case done:
			// Recorded, so that the volumes deleted in earlier rounds are not asked again.
			v.SnapshotID, v.Reason, v.Message = "", "DataDeleted", "the snapshot data was deleted"
		default:
			waiting = append(waiting, v.ClaimName)
		}
	}
	if len(waiting) > 0 {
		r.setCondition(snap, storkv1.ConditionReady, false, "DeletingData", "deleting the snapshot data of "+strings.Join(waiting, ", "))
	}
	return strings.Join(waiting, ","), errors.Join(errs...)
}

// backupCopying names the Snapshot's Backup while it is copying the data, which must not be
// deleted under it (a Snapshot that retention deletes right after its run, say).
func (r *SnapshotReconciler) backupCopying(ctx context.Context, snap *storkv1.Snapshot) (string, error) {
	if snap.Status.BackupName == "" {
		return "", nil
	}
	b := &storkv1.Backup{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: snap.Namespace, Name: snap.Status.BackupName}, b)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil || b.Status.Phase != storkv1.BackupInProgress || b.Spec.SnapshotName != snap.Name {
		// A Backup still waiting (for its location, say) has not started reading: it fails
		// with SnapshotNotReady rather than hold the Snapshot forever.
		return "", err
	}
	return b.Name, nil
}

// restoreUsing names a Restore, not finished, that restores from the Snapshot.
func (r *SnapshotReconciler) restoreUsing(ctx context.Context, snap *storkv1.Snapshot) (string, error) {
	return activeRestore(ctx, r.Client, snap.Namespace, func(src storkv1.RestoreSource) bool { return src.SnapshotName == snap.Name })
}

// activeRestore names a Restore, not finished, whose source is in namespace ns and matches.
func activeRestore(ctx context.Context, c client.Client, ns string, match func(storkv1.RestoreSource) bool) (string, error) {
	var list storkv1.RestoreList
	if err := c.List(ctx, &list); err != nil {
		return "", fmt.Errorf("listing Restores: %w", err)
	}
	for _, rs := range list.Items {
		src := rs.Spec.Source
		if src.Namespace == "" {
			src.Namespace = rs.Namespace
		}
		switch rs.Status.Phase {
		case storkv1.RestoreCompleted, storkv1.RestorePartiallyFailed, storkv1.RestoreFailed:
			continue
		}
		if src.Namespace == ns && match(src) && rs.DeletionTimestamp == nil {
			return rs.Namespace + "/" + rs.Name, nil
		}
	}
	return "", nil
}

func hasStage(results []storkv1.HookResult, stage storkv1.HookStage) bool {
	for _, r := range results {
		if r.Stage == stage {
			return true
		}
	}
	return false
}

func ownerRef(snap *storkv1.Snapshot) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Snapshot", Name: snap.Name, UID: snap.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(false)}
}

func describeSource(s storkv1.SnapshotSource) string {
	switch {
	case s.ClaimName != "":
		return "claim " + s.ClaimName
	case s.Selector != nil:
		sel, _ := metav1.LabelSelectorAsSelector(s.Selector)
		return "the claims matching " + sel.String()
	}
	return "every claim of the namespace"
}
