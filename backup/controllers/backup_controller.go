package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/locator"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/conditions"
	"stork.dev/stork/internal/crashpoint"
	"stork.dev/stork/internal/retry"
)

var (
	backupsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_backup_total", Help: "Backups that reached a final phase, by phase.",
	}, []string{"phase"})
	backupDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "stork_backup_duration_seconds", Help: "Time from a Backup's start to its final phase.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14),
	})
	backupBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stork_backup_bytes_total", Help: "Bytes of volume data in Backups that completed.",
	})
	backupBytesSkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stork_backup_bytes_skipped_total",
		Help: "Bytes of volume data that completed Backups took from each claim's previous backup without reading (files unchanged since).",
	})
	backupVolumeFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stork_backup_volume_failures_total", Help: "Volumes whose upload failed.",
	})
)

// Crash points of a backup (see internal/crashpoint), each just before the status that would
// record what was done is written.
const (
	// CrashExportRequested: a volume's driver was asked to copy its snapshot (an upload task
	// made).
	CrashExportRequested = "backup/export-requested"
	// CrashResourcesSaved: the objects are in the repository.
	CrashResourcesSaved = "backup/resources-saved"
	// CrashVolumesExported: every volume is copied, the record not written.
	CrashVolumesExported = "backup/volumes-exported"
	// CrashRecordWritten: the record is in the repository, the Backup not yet Completed.
	CrashRecordWritten = "backup/record-written"
)

// BackupFinalizer keeps a Backup whose deletion policy is Delete until its data is forgotten
// in the repository.
const BackupFinalizer = "stork.dev/backup-data"

// BackupReconciler copies Snapshots into BackupLocations. Once the Snapshot is Ready and the
// location Available, it:
//  1. stores the application's Kubernetes objects in the repository, when the Snapshot asked
//     for them (backup/engine/resources, backup/engine/catalog);
//  2. puts what the agents need to reach the location into an access Secret in Stork's
//     namespace and asks each volume's driver to export its snapshot (the local driver: an
//     Upload task on the node that holds it, run with the backup engine);
//  3. once every volume is final, writes the backup's record, which makes it visible to other
//     clusters as complete, and removes the access Secret.
//
// Deleting a Backup with policy Delete forgets its repository snapshots (after uploads still
// running have ended); the location's next prune frees the space.
type BackupReconciler struct {
	Client client.Client
	// Reader reads Backups, Secrets and the objects to back up from the API server (no cache,
	// no list/watch of Secrets).
	Reader client.Reader
	// Repos gives the catalogs of the locations' repositories (a *locator.Cache).
	Repos    locator.Catalogs
	Drivers  *drivers.Set
	Recorder events.EventRecorder
	// Namespace is Stork's namespace, where access Secrets are made.
	Namespace string
	// Cluster identifies this cluster in backups' tags and status.
	Cluster string
	Poll    time.Duration
	// CancelGrace is how long a Backup deleted while copying waits, once its upload tasks are
	// deleted, for the agents to stop them before it forgets what they wrote (default 15s).
	CancelGrace time.Duration
	// Retry bounds the retries of a failing step (saving the objects): then the Backup fails.
	Retry retry.Policy
}

// SetupWithManager registers the controller.
func (r *BackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Poll == 0 {
		r.Poll = 2 * time.Second
	}
	return ctrl.NewControllerManagedBy(mgr).Named("backup").For(&storkv1.Backup{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).Complete(r)
}

func (r *BackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	b := &storkv1.Backup{}
	if err := r.Reader.Get(ctx, req.NamespacedName, b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if b.DeletionTimestamp != nil {
		return r.finalize(ctx, b)
	}
	if finalBackup(b.Status.Phase) || b.Status.Imported || b.Annotations[ImportedFromAnnotation] != "" {
		return ctrl.Result{}, r.dropAccess(ctx, b)
	}
	if b.Spec.DeletionPolicy != storkv1.DeletionRetain && !controllerutil.ContainsFinalizer(b, BackupFinalizer) {
		// Before anything is written, so that no data of a deleted Backup is left behind.
		controllerutil.AddFinalizer(b, BackupFinalizer)
		return ctrl.Result{}, r.Client.Update(ctx, b)
	}
	if wait := retry.Wait(b.Status.Retry, time.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	orig := b.DeepCopy()
	res, err := r.step(ctx, b)
	if err != nil {
		return ctrl.Result{}, err
	}
	b.Status.ObservedGeneration = b.Generation
	done := finalBackup(b.Status.Phase)
	if done {
		// Revoke first, publish second: a finished Backup never has live credentials beside it.
		// If the status write fails, the next reconcile makes the Secret again if it needs it.
		if err := r.dropAccess(ctx, b); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.Client.Status().Patch(ctx, b, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the status of Backup %s: %w", req.NamespacedName, err)
	}
	if done {
		backupsFinished.WithLabelValues(string(b.Status.Phase)).Inc()
		if b.Status.StartTime != nil {
			backupDuration.Observe(time.Since(b.Status.StartTime.Time).Seconds())
		}
		if b.Status.Phase == storkv1.BackupCompleted {
			backupBytes.Add(float64(b.Status.Progress.BytesTotal))
			backupBytesSkipped.Add(float64(b.Status.Progress.BytesSkipped))
		}
	}
	return res, nil
}

// step moves a Backup on by one reconcile, one phase after the other: the Snapshot must be
// Ready and the location writable and Available; then the volumes are planned, the
// Kubernetes objects saved, the volumes exported, and the record written (complete). A phase
// that must wait or fail returns a result to stop at (stop != nil).
func (r *BackupReconciler) step(ctx context.Context, b *storkv1.Backup) (ctrl.Result, error) {
	st := &b.Status
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime, st.Phase, st.Cluster, st.SourceNamespace = &now, storkv1.BackupPending, r.Cluster, b.Namespace
	}
	snap, stop, err := r.readySnapshot(ctx, b)
	if stop != nil || err != nil {
		return ptr.Deref(stop, ctrl.Result{}), err
	}
	loc, stop, err := r.writableLocation(ctx, b)
	if stop != nil || err != nil {
		return ptr.Deref(stop, ctrl.Result{}), err
	}
	if len(st.Volumes) == 0 {
		planVolumes(st, snap)
	}
	st.Phase = storkv1.BackupInProgress
	if snap.Spec.IncludeResources && st.ResourcesSnapshotID == "" {
		if err := r.saveResources(ctx, b, snap, loc); err != nil {
			r.event(b, corev1.EventTypeWarning, "ResourcesFailed", err.Error())
			return r.retryStep(b, "SavingResources", err.Error(), "ResourcesFailed"), nil
		}
		retry.Succeeded(&st.Retry, "SavingResources")
	}
	if done, err := r.exportVolumes(ctx, b, snap, loc); err != nil || !done {
		return ctrl.Result{RequeueAfter: r.Poll}, err
	}
	crashpoint.Here(CrashVolumesExported)
	return r.complete(ctx, b, loc)
}

// retryStep records a failed attempt of step in status (condition Progressing, status.retry) and
// says when to try again; once the retry policy's limit has passed, it fails the Backup with
// reason failReason, saying how often it was tried.
func (r *BackupReconciler) retryStep(b *storkv1.Backup, step, msg, failReason string) ctrl.Result {
	wait, giveUp, summary := r.Retry.Failed(&b.Status.Retry, step, msg, time.Now())
	if giveUp {
		r.fail(b, failReason, summary)
		return ctrl.Result{}
	}
	r.condition(b, storkv1.ConditionProgressing, true, step, fmt.Sprintf("%s (attempt %d; tried until %s)",
		msg, b.Status.Retry.Attempts, b.Status.Retry.GiveUpTime.UTC().Format(time.RFC3339)))
	return ctrl.Result{RequeueAfter: wait}
}

// readySnapshot reads the Backup's Snapshot; it stops the step while the Snapshot is not Ready
// yet, and fails the Backup when the Snapshot is missing or will never be Ready.
func (r *BackupReconciler) readySnapshot(ctx context.Context, b *storkv1.Backup) (snap *storkv1.Snapshot, stop *ctrl.Result, err error) {
	snap = &storkv1.Snapshot{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.SnapshotName}, snap)
	switch {
	case apierrors.IsNotFound(err):
		r.fail(b, "SnapshotNotFound", fmt.Sprintf("spec.snapshotName: Snapshot %s/%s does not exist", b.Namespace, b.Spec.SnapshotName))
		return nil, &ctrl.Result{}, nil
	case err != nil:
		return nil, nil, err
	}
	switch snap.Status.Phase {
	case storkv1.SnapshotReady:
	case storkv1.SnapshotDeleting:
		if b.Status.Phase == storkv1.BackupInProgress {
			break // copying: the Snapshot keeps its data until this Backup is done with it
		}
		r.fail(b, "SnapshotNotReady", fmt.Sprintf("Snapshot %s is %s: there is nothing to copy", snap.Name, snap.Status.Phase))
		return nil, &ctrl.Result{}, nil
	case storkv1.SnapshotFailed:
		r.fail(b, "SnapshotNotReady", fmt.Sprintf("Snapshot %s is %s: there is nothing to copy", snap.Name, snap.Status.Phase))
		return nil, &ctrl.Result{}, nil
	default:
		r.condition(b, storkv1.ConditionProgressing, true, "WaitingForSnapshot", "waiting for Snapshot "+snap.Name+" to be Ready")
		return nil, &ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	return snap, nil, nil
}

// writableLocation reads the Backup's location; it stops the step while the location is not
// Available, and fails the Backup when it is missing or ReadOnly.
func (r *BackupReconciler) writableLocation(ctx context.Context, b *storkv1.Backup) (loc *storkv1.BackupLocation, stop *ctrl.Result, err error) {
	loc = &storkv1.BackupLocation{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.BackupLocation}, loc)
	switch {
	case apierrors.IsNotFound(err):
		r.fail(b, "LocationNotFound", fmt.Sprintf("spec.backupLocation: BackupLocation %s/%s does not exist", b.Namespace, b.Spec.BackupLocation))
		return nil, &ctrl.Result{}, nil
	case err != nil:
		return nil, nil, err
	case loc.Spec.AccessMode == storkv1.AccessReadOnly:
		r.fail(b, "LocationReadOnly", "spec.backupLocation: BackupLocation "+loc.Name+" is ReadOnly")
		return nil, &ctrl.Result{}, nil
	case loc.Status.Phase != storkv1.BackupLocationAvailable:
		res := r.retryStep(b, "WaitingForLocation", locator.Waiting(loc), "LocationUnavailable")
		return nil, &res, nil
	}
	retry.Succeeded(&b.Status.Retry, "WaitingForLocation")
	return loc, nil, nil
}

// planVolumes lists the Snapshot's volumes in the Backup's status, once: a volume the Snapshot
// did not capture is Failed from the start.
func planVolumes(st *storkv1.BackupStatus, snap *storkv1.Snapshot) {
	zones := map[string]bool{}
	for _, v := range snap.Status.Volumes {
		bv := storkv1.BackupVolume{ClaimName: v.ClaimName, Driver: v.Driver, StorageClassName: v.StorageClassName, Topology: v.Topology,
			SizeBytes: v.SizeBytes, AccessModes: v.AccessModes, Phase: storkv1.VolumePending}
		if v.Capacity != nil {
			bv.SizeBytes = v.Capacity.Value()
		}
		if v.Phase != storkv1.VolumeSucceeded {
			bv.Phase, bv.Message = storkv1.VolumeFailed, "not captured by the Snapshot"
		}
		if v.Topology.Zone != "" {
			zones[v.Topology.Zone] = true
		}
		st.Volumes = append(st.Volumes, bv)
	}
	for z := range zones {
		st.Zones = append(st.Zones, z)
	}
	sort.Strings(st.Zones)
}

// complete runs once every volume is final: it writes the record, unless every volume failed,
// and sets the final phase.
func (r *BackupReconciler) complete(ctx context.Context, b *storkv1.Backup, loc *storkv1.BackupLocation) (ctrl.Result, error) {
	st := &b.Status
	var failed []string
	for _, v := range st.Volumes {
		if v.Phase == storkv1.VolumeFailed {
			failed = append(failed, v.ClaimName+": "+v.Message)
		}
	}
	if len(failed) < len(st.Volumes) && st.RecordID == "" {
		phase := storkv1.BackupCompleted
		if len(failed) > 0 {
			phase = storkv1.BackupPartiallyFailed
		}
		if err := r.saveRecord(ctx, b, loc, phase); err != nil {
			// Without its record the backup is not complete anywhere: in the end, failed.
			return r.retryStep(b, "SavingRecord", err.Error(), "RecordFailed"), nil
		}
		retry.Succeeded(&b.Status.Retry, "SavingRecord")
	}
	now := metav1.Now()
	st.CompletionTime = &now
	switch {
	case len(failed) == 0:
		st.Phase = storkv1.BackupCompleted
		what := fmt.Sprintf("%d volumes", len(st.Volumes))
		if st.ResourcesSnapshotID != "" {
			what += fmt.Sprintf(" and %d objects", st.ResourceCount)
		}
		r.finish(b, true, "Completed", what+" copied to "+loc.Spec.URL)
	case len(failed) == len(st.Volumes):
		st.Phase = storkv1.BackupFailed
		r.finish(b, false, commonReason(st.Volumes, "Failed"), strings.Join(failed, "; "))
	default:
		st.Phase = storkv1.BackupPartiallyFailed
		r.finish(b, false, "PartiallyFailed", fmt.Sprintf("%d of %d volumes failed: %s", len(failed), len(st.Volumes), strings.Join(failed, "; ")))
	}
	return ctrl.Result{}, nil
}

// commonReason is the reason all the volumes failed with, when it is one (UploadFailed for every
// volume, say), else fallback.
func commonReason(vols []storkv1.BackupVolume, fallback string) string {
	reason := ""
	for _, v := range vols {
		if v.Reason == "" || (reason != "" && v.Reason != reason) {
			return fallback
		}
		reason = v.Reason
	}
	if reason == "" {
		return fallback
	}
	return reason
}

// exportVolumes has each volume's driver copy its snapshot, and reports whether every volume
// is final.
func (r *BackupReconciler) exportVolumes(ctx context.Context, b *storkv1.Backup, snap *storkv1.Snapshot, loc *storkv1.BackupLocation) (bool, error) {
	st := &b.Status
	secret, err := r.ensureAccess(ctx, b, loc)
	if err != nil {
		return false, err
	}
	for i := range st.Volumes {
		v := &st.Volumes[i]
		if v.Phase == storkv1.VolumeSucceeded || v.Phase == storkv1.VolumeFailed {
			continue
		}
		var sv *storkv1.SnapshotVolumeStatus
		for j := range snap.Status.Volumes {
			if snap.Status.Volumes[j].ClaimName == v.ClaimName {
				sv = &snap.Status.Volumes[j]
			}
		}
		d, ok := r.Drivers.Get(v.Driver)
		exp, canExport := drivers.As[drivers.Exporter](d)
		if sv == nil || !ok || !canExport {
			v.Phase, v.Reason, v.Message = storkv1.VolumeFailed, "DriverUnavailable", "driver "+v.Driver+" is not enabled here or cannot copy snapshots to a location"
			backupVolumeFailures.Inc()
			continue
		}
		vs, err := exp.Export(ctx, drivers.ExportRequest{
			ID:           string(b.UID) + "/" + v.ClaimName,
			Source:       drivers.SnapshotRef{Namespace: b.Namespace, VolumeName: sv.VolumeName, SnapshotID: sv.SnapshotID, Node: sv.Node},
			Location:     loc.Name,
			AccessSecret: secret,
			Owner:        &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Backup", Name: b.Name, UID: b.UID, Controller: ptr.To(true)},
			Tags: map[string]string{catalog.TagKind: catalog.KindVolume, catalog.TagCluster: r.Cluster, catalog.TagNamespace: b.Namespace,
				"pvc": v.ClaimName, "snapshot": snap.Name, catalog.TagBackup: b.Name, catalog.TagBackupUID: string(b.UID), "zone": v.Topology.Zone},
			StrictChangeDetection: loc.Spec.StrictChangeDetection,
		})
		if err != nil {
			return false, fmt.Errorf("driver %s: exporting claim %s: %w", v.Driver, v.ClaimName, err)
		}
		crashpoint.Here(CrashExportRequested)
		v.Phase, v.Progress, v.RepositorySnapshotID = vs.Phase, vs.Progress, vs.RepositorySnapshotID
		v.Reason, v.Message = "", vs.Message
		if vs.Phase == storkv1.VolumeFailed {
			v.Reason = vs.Reason
			backupVolumeFailures.Inc()
			r.event(b, corev1.EventTypeWarning, "VolumeFailed", fmt.Sprintf("claim %s: %s", v.ClaimName, vs.Message))
		}
	}

	p := storkv1.Progress{ItemsTotal: int64(len(st.Volumes))}
	for _, v := range st.Volumes {
		p.BytesDone += v.Progress.BytesDone
		p.BytesTotal += v.Progress.BytesTotal
		p.BytesSkipped += v.Progress.BytesSkipped
		if v.Phase == storkv1.VolumeSucceeded || v.Phase == storkv1.VolumeFailed {
			p.ItemsDone++
		}
	}
	st.Progress = p
	if p.ItemsDone < p.ItemsTotal {
		r.condition(b, storkv1.ConditionProgressing, true, "Uploading", fmt.Sprintf("%d of %d volumes copied", p.ItemsDone, p.ItemsTotal))
		return false, nil
	}
	return true, nil
}

// record is the catalog record of a Backup as its status stands.
func (r *BackupReconciler) record(b *storkv1.Backup) *catalog.Record {
	st := &b.Status
	rec := &catalog.Record{Name: b.Name, Namespace: b.Namespace, UID: string(b.UID), Cluster: r.Cluster, SnapshotName: b.Spec.SnapshotName,
		Phase: st.Phase, Zones: st.Zones, Volumes: st.Volumes, ResourcesSnapshotID: st.ResourcesSnapshotID, ResourceCount: st.ResourceCount}
	if st.StartTime != nil {
		rec.StartTime = st.StartTime.UTC()
	}
	rec.CompletionTime = time.Now().UTC()
	return rec
}

// saveResources stores the Kubernetes objects of the Snapshot's selection. An earlier attempt
// that stored them but was stopped before its status was written is found by its tags.
func (r *BackupReconciler) saveResources(ctx context.Context, b *storkv1.Backup, snap *storkv1.Snapshot, loc *storkv1.BackupLocation) error {
	cat, err := r.Repos.Catalog(ctx, loc)
	if err != nil {
		return err
	}
	if found, err := cat.Find(ctx, catalog.KindResources, string(b.UID)); err != nil {
		return fmt.Errorf("listing the repository in %s: %w", loc.Spec.URL, err)
	} else if found != nil {
		b.Status.ResourcesSnapshotID = found.ID.String()
		b.Status.ResourceCount = int32(found.Summary.Files)
		return nil
	}
	var sel labels.Selector
	if ls := snap.Spec.Source.Selector; ls != nil {
		if sel, err = metav1.LabelSelectorAsSelector(ls); err != nil {
			return fmt.Errorf("spec.source.selector of Snapshot %s: %w", snap.Name, err)
		}
	}
	objs, err := Collect(ctx, r.Reader, b.Namespace, sel)
	if err != nil {
		return fmt.Errorf("reading the objects of namespace %s: %w", b.Namespace, err)
	}
	id, err := cat.WriteResources(ctx, r.record(b), objs)
	if err != nil {
		return err
	}
	crashpoint.Here(CrashResourcesSaved)
	b.Status.ResourcesSnapshotID, b.Status.ResourceCount = id.String(), int32(len(objs))
	r.event(b, corev1.EventTypeNormal, "ResourcesSaved", fmt.Sprintf("%d objects of namespace %s saved", len(objs), b.Namespace))
	return nil
}

// saveRecord writes the backup's record, the step that makes it complete.
func (r *BackupReconciler) saveRecord(ctx context.Context, b *storkv1.Backup, loc *storkv1.BackupLocation, phase storkv1.BackupPhase) error {
	cat, err := r.Repos.Catalog(ctx, loc)
	if err != nil {
		return err
	}
	if found, err := cat.Find(ctx, catalog.KindRecord, string(b.UID)); err != nil {
		return fmt.Errorf("listing the repository in %s: %w", loc.Spec.URL, err)
	} else if found != nil {
		b.Status.RecordID = found.ID.String()
		return nil
	}
	rec := r.record(b)
	rec.Phase = phase
	id, err := cat.WriteRecord(ctx, rec)
	if err != nil {
		return err
	}
	crashpoint.Here(CrashRecordWritten)
	b.Status.RecordID = id.String()
	return nil
}

// finalize forgets a deleted Backup's data in its repository (policy Delete), once no upload of
// it is running, and lets the object go.
func (r *BackupReconciler) finalize(ctx context.Context, b *storkv1.Backup) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(b, BackupFinalizer) {
		return ctrl.Result{}, r.dropAccess(ctx, b)
	}
	orig := b.DeepCopy()
	if !finalBackup(b.Status.Phase) && b.Status.Phase != storkv1.BackupDeleting && b.Status.Phase != storkv1.BackupCancelled {
		// Deleted while copying: stop the copy instead of waiting for it.
		now := metav1.Now()
		b.Status.Phase, b.Status.CompletionTime = storkv1.BackupCancelled, &now
		msg := "the Backup was deleted before it finished: its uploads are stopped, and what they wrote is forgotten"
		r.condition(b, storkv1.ConditionReady, false, "Cancelled", msg)
		r.event(b, corev1.EventTypeWarning, "Cancelled", msg)
		backupsFinished.WithLabelValues(string(storkv1.BackupCancelled)).Inc()
	}
	done, err := r.forget(ctx, b)
	if err != nil {
		r.condition(b, storkv1.ConditionReady, false, "DeleteFailed", err.Error())
		r.event(b, corev1.EventTypeWarning, "DeleteFailed", err.Error())
	}
	if !done {
		if b.Status.Phase != storkv1.BackupCancelled {
			b.Status.Phase = storkv1.BackupDeleting
		}
		if perr := r.Client.Status().Patch(ctx, b, client.MergeFrom(orig)); perr != nil && !apierrors.IsNotFound(perr) {
			return ctrl.Result{}, perr
		}
		if err != nil {
			return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	if err := r.dropAccess(ctx, b); err != nil {
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(b, BackupFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Update(ctx, b))
}

// forget stops the uploads of a cancelled Backup (deleting its tasks, then waiting CancelGrace for
// the agents to stop, so that no snapshot is written after the forget), then forgets every
// snapshot of the Backup, and reports whether it is done.
func (r *BackupReconciler) forget(ctx context.Context, b *storkv1.Backup) (bool, error) {
	if b.Status.Imported || b.Spec.DeletionPolicy == storkv1.DeletionRetain {
		return true, nil
	}
	if len(b.Status.Volumes) == 0 && b.Status.ResourcesSnapshotID == "" {
		return true, nil // it never started copying: nothing was written
	}
	// A namespace deleted with its Backups is the disaster backups are for, not a request to
	// delete them: the data stays, and sync shows it again wherever the location is read.
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: b.Namespace}, ns); client.IgnoreNotFound(err) != nil {
		return false, err
	} else if err != nil || ns.DeletionTimestamp != nil {
		r.event(b, corev1.EventTypeNormal, "DataLeft", "namespace "+b.Namespace+" is being deleted: the backup's data stays in the store")
		return true, nil
	}
	loc := &storkv1.BackupLocation{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.BackupLocation}, loc)
	switch {
	case apierrors.IsNotFound(err):
		r.event(b, corev1.EventTypeWarning, "DataLeft", "BackupLocation "+b.Spec.BackupLocation+" is gone: the backup's data, if any, stays in the store")
		return true, nil
	case err != nil:
		return false, err
	case loc.Spec.AccessMode == storkv1.AccessReadOnly:
		r.event(b, corev1.EventTypeNormal, "DataLeft", "BackupLocation "+loc.Name+" is ReadOnly: the backup's data stays in the store")
		return true, nil
	}
	if b.Status.Phase == storkv1.BackupCancelled {
		if left, err := r.deleteTasks(ctx, b); err != nil || left > 0 {
			return false, err
		}
		grace := r.CancelGrace
		if grace == 0 {
			grace = 15 * time.Second
		}
		if time.Since(b.DeletionTimestamp.Time) < grace {
			return false, nil
		}
	}
	if user, err := r.restoreUsing(ctx, b); err != nil || user != "" {
		if user != "" {
			r.condition(b, storkv1.ConditionReady, false, "InUse", "deleting once Restore "+user+" has finished with it")
		}
		return false, err
	}
	cat, err := r.Repos.Catalog(ctx, loc)
	if err != nil {
		return false, err
	}
	n, err := cat.Forget(ctx, string(b.UID))
	if err != nil {
		return false, err
	}
	r.event(b, corev1.EventTypeNormal, "DataDeleted", fmt.Sprintf("forgot %d repository snapshots in %s; the location's next prune frees their space", n, loc.Spec.URL))
	return true, nil
}

// deleteTasks deletes the VolumeTasks the Backup owns (its uploads), which makes the agents stop
// them, and returns how many are still there.
func (r *BackupReconciler) deleteTasks(ctx context.Context, b *storkv1.Backup) (int, error) {
	var tasks storkv1.VolumeTaskList
	if err := r.Client.List(ctx, &tasks); err != nil {
		return 0, fmt.Errorf("listing the VolumeTasks of Backup %s/%s: %w", b.Namespace, b.Name, err)
	}
	left := 0
	for i := range tasks.Items {
		t := &tasks.Items[i]
		if !metav1.IsControlledBy(t, b) {
			continue
		}
		left++
		if t.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, t); client.IgnoreNotFound(err) != nil {
				return 0, fmt.Errorf("deleting VolumeTask %s/%s of Backup %s/%s: %w", t.Namespace, t.Name, b.Namespace, b.Name, err)
			}
		}
	}
	return left, nil
}

// restoreUsing names a Restore, not finished, that restores from the Backup: its data must stay
// until the downloads are done.
func (r *BackupReconciler) restoreUsing(ctx context.Context, b *storkv1.Backup) (string, error) {
	return activeRestore(ctx, r.Client, b.Namespace, func(src storkv1.RestoreSource) bool { return src.BackupName == b.Name })
}

// accessName is the access Secret of a Backup, in Stork's namespace.
func accessName(b *storkv1.Backup) string { return locator.AccessSecretName(b.UID) }

// ensureAccess makes the Backup's access Secret unless it exists, and returns its name.
func (r *BackupReconciler) ensureAccess(ctx context.Context, b *storkv1.Backup, loc *storkv1.BackupLocation) (string, error) {
	return accessName(b), locator.EnsureAccessSecret(ctx, r.Client, r.Reader, r.Namespace, accessName(b), b.Namespace,
		map[string]string{"stork.dev/backup-namespace": b.Namespace, "stork.dev/backup": b.Name}, loc)
}

// dropAccess deletes the Backup's access Secret: the copy no longer needs it.
func (r *BackupReconciler) dropAccess(ctx context.Context, b *storkv1.Backup) error {
	return locator.DeleteAccessSecret(ctx, r.Client, r.Namespace, accessName(b))
}

func finalBackup(p storkv1.BackupPhase) bool {
	return p == storkv1.BackupCompleted || p == storkv1.BackupPartiallyFailed || p == storkv1.BackupFailed
}

func (r *BackupReconciler) fail(b *storkv1.Backup, reason, msg string) {
	now := metav1.Now()
	b.Status.Phase, b.Status.CompletionTime = storkv1.BackupFailed, &now
	r.finish(b, false, reason, msg)
}

func (r *BackupReconciler) finish(b *storkv1.Backup, ok bool, reason, msg string) {
	conditions.Finish(&b.Status.Conditions, b.Generation, r.Recorder, b, "Backup", ok, reason, reason, msg)
}

func (r *BackupReconciler) condition(b *storkv1.Backup, t string, ok bool, reason, msg string) {
	conditions.Set(&b.Status.Conditions, b.Generation, t, ok, reason, msg)
}

func (r *BackupReconciler) event(obj client.Object, kind, reason, msg string) {
	conditions.Event(r.Recorder, obj, "Backup", kind, reason, msg)
}
