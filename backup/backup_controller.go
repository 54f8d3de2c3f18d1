package backup

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/locations"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/conditions"
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
		Name: "stork_backup_bytes_total", Help: "Bytes of volume data read by Backups that completed.",
	})
	backupVolumeFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stork_backup_volume_failures_total", Help: "Volumes whose upload failed.",
	})
)

func init() {
	metrics.Registry.MustRegister(backupsFinished, backupDuration, backupBytes, backupVolumeFailures)
}

// BackupReconciler copies Snapshots into BackupLocations: once the Snapshot is Ready and the
// location Available, it puts what the agents need to reach the location into an access Secret
// in Stork's namespace, asks each volume's driver to export its snapshot (the local driver: an
// Upload task on the node that holds it, run with the backup engine), and removes the access
// Secret when every volume is final.
type BackupReconciler struct {
	Client client.Client
	// Reader reads Backups and Secrets from the API server (no cache, no list/watch of Secrets).
	Reader   client.Reader
	Drivers  *drivers.Set
	Recorder events.EventRecorder
	// Namespace is Stork's namespace, where access Secrets are made.
	Namespace string
	// Cluster identifies this cluster in backups' tags and status.
	Cluster string
	Poll    time.Duration
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
	if finalBackup(b.Status.Phase) || b.Status.Imported || b.DeletionTimestamp != nil {
		return ctrl.Result{}, r.dropAccess(ctx, b)
	}
	orig := b.DeepCopy()
	res, err := r.step(ctx, b)
	if err != nil {
		return ctrl.Result{}, err
	}
	b.Status.ObservedGeneration = b.Generation
	if err := r.Client.Status().Patch(ctx, b, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the status of Backup %s: %w", req.NamespacedName, err)
	}
	if finalBackup(b.Status.Phase) {
		backupsFinished.WithLabelValues(string(b.Status.Phase)).Inc()
		if b.Status.StartTime != nil {
			backupDuration.Observe(time.Since(b.Status.StartTime.Time).Seconds())
		}
		if b.Status.Phase == storkv1.BackupCompleted {
			backupBytes.Add(float64(b.Status.Progress.BytesTotal))
		}
		return ctrl.Result{}, r.dropAccess(ctx, b)
	}
	return res, nil
}

func (r *BackupReconciler) step(ctx context.Context, b *storkv1.Backup) (ctrl.Result, error) {
	st := &b.Status
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime, st.Phase, st.Cluster, st.SourceNamespace = &now, storkv1.BackupPending, r.Cluster, b.Namespace
	}
	snap := &storkv1.Snapshot{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.SnapshotName}, snap)
	switch {
	case apierrors.IsNotFound(err):
		r.fail(b, "SnapshotNotFound", fmt.Sprintf("spec.snapshotName: Snapshot %s/%s does not exist", b.Namespace, b.Spec.SnapshotName))
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	switch snap.Status.Phase {
	case storkv1.SnapshotReady:
	case storkv1.SnapshotFailed, storkv1.SnapshotDeleting:
		r.fail(b, "SnapshotNotReady", fmt.Sprintf("Snapshot %s is %s: there is nothing to copy", snap.Name, snap.Status.Phase))
		return ctrl.Result{}, nil
	default:
		r.condition(b, storkv1.ConditionProgressing, true, "WaitingForSnapshot", "waiting for Snapshot "+snap.Name+" to be Ready")
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	loc := &storkv1.BackupLocation{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.BackupLocation}, loc)
	switch {
	case apierrors.IsNotFound(err):
		r.fail(b, "LocationNotFound", fmt.Sprintf("spec.backupLocation: BackupLocation %s/%s does not exist", b.Namespace, b.Spec.BackupLocation))
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	case loc.Spec.AccessMode == storkv1.AccessReadOnly:
		r.fail(b, "LocationReadOnly", "spec.backupLocation: BackupLocation "+loc.Name+" is ReadOnly")
		return ctrl.Result{}, nil
	case loc.Status.Phase != storkv1.BackupLocationAvailable:
		msg := "waiting for BackupLocation " + loc.Name + " to be Available"
		if c := meta.FindStatusCondition(loc.Status.Conditions, storkv1.ConditionAvailable); c != nil {
			msg += " (" + c.Reason + ": " + c.Message + ")"
		}
		r.condition(b, storkv1.ConditionProgressing, true, "WaitingForLocation", msg)
		return ctrl.Result{RequeueAfter: 5 * r.Poll}, nil
	}

	if len(st.Volumes) == 0 {
		zones := map[string]bool{}
		for _, v := range snap.Status.Volumes {
			bv := storkv1.BackupVolume{ClaimName: v.ClaimName, Driver: v.Driver, StorageClassName: v.StorageClassName, Topology: v.Topology,
				SizeBytes: v.SizeBytes, Phase: storkv1.VolumePending}
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
	st.Phase = storkv1.BackupInProgress

	secret, err := r.ensureAccess(ctx, b, loc)
	if err != nil {
		return ctrl.Result{}, err
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
			v.Phase, v.Message = storkv1.VolumeFailed, "driver "+v.Driver+" is not enabled here or cannot copy snapshots to a location"
			backupVolumeFailures.Inc()
			continue
		}
		vs, err := exp.Export(ctx, drivers.ExportRequest{
			ID:           string(b.UID) + "/" + v.ClaimName,
			Source:       drivers.SnapshotRef{Namespace: b.Namespace, VolumeName: sv.VolumeName, SnapshotID: sv.SnapshotID, Node: sv.Node},
			Location:     loc.Name,
			AccessSecret: secret,
			Owner:        &metav1.OwnerReference{APIVersion: storkv1.GroupVersion.String(), Kind: "Backup", Name: b.Name, UID: b.UID, Controller: ptr.To(true)},
			Tags: map[string]string{"cluster": r.Cluster, "namespace": b.Namespace, "pvc": v.ClaimName, "snapshot": snap.Name,
				"backup": b.Name, "zone": v.Topology.Zone},
		})
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("driver %s: exporting claim %s: %w", v.Driver, v.ClaimName, err)
		}
		v.Phase, v.Progress, v.RepositorySnapshotID = vs.Phase, vs.Progress, vs.RepositorySnapshotID
		v.Message = vs.Message
		if vs.Phase == storkv1.VolumeFailed {
			backupVolumeFailures.Inc()
			r.event(b, corev1.EventTypeWarning, "VolumeFailed", fmt.Sprintf("claim %s: %s", v.ClaimName, vs.Message))
		}
	}

	p := storkv1.Progress{ItemsTotal: int64(len(st.Volumes))}
	var failed []string
	for _, v := range st.Volumes {
		p.BytesDone += v.Progress.BytesDone
		p.BytesTotal += v.Progress.BytesTotal
		switch v.Phase {
		case storkv1.VolumeSucceeded:
			p.ItemsDone++
		case storkv1.VolumeFailed:
			p.ItemsDone++
			failed = append(failed, v.ClaimName+": "+v.Message)
		}
	}
	st.Progress = p
	if p.ItemsDone < p.ItemsTotal {
		r.condition(b, storkv1.ConditionProgressing, true, "Uploading", fmt.Sprintf("%d of %d volumes copied", p.ItemsDone, p.ItemsTotal))
		return ctrl.Result{RequeueAfter: r.Poll}, nil
	}
	now := metav1.Now()
	st.CompletionTime = &now
	switch {
	case len(failed) == 0:
		st.Phase = storkv1.BackupCompleted
		r.finish(b, true, "Completed", fmt.Sprintf("%d volumes copied to %s", len(st.Volumes), loc.Spec.URL))
	case len(failed) == len(st.Volumes):
		st.Phase = storkv1.BackupFailed
		r.finish(b, false, "Failed", strings.Join(failed, "; "))
	default:
		st.Phase = storkv1.BackupPartiallyFailed
		r.finish(b, false, "PartiallyFailed", fmt.Sprintf("%d of %d volumes failed: %s", len(failed), len(st.Volumes), strings.Join(failed, "; ")))
	}
	return ctrl.Result{}, nil
}

// accessName is the access Secret of a Backup, in Stork's namespace.
func accessName(b *storkv1.Backup) string { return "stork-access-" + string(b.UID) }

// ensureAccess makes the Backup's access Secret unless it exists, and returns its name.
func (r *BackupReconciler) ensureAccess(ctx context.Context, b *storkv1.Backup, loc *storkv1.BackupLocation) (string, error) {
	name := accessName(b)
	err := r.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &corev1.Secret{})
	if err == nil {
		return name, nil
	}
	if !apierrors.IsNotFound(err) {
		return "", err
	}
	access, err := locations.Resolve(ctx, r.Reader, loc)
	if err != nil {
		return "", fmt.Errorf("reading the Secrets of BackupLocation %s/%s: %w", loc.Namespace, loc.Name, err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name,
			Labels: map[string]string{"stork.dev/backup-namespace": b.Namespace, "stork.dev/backup": b.Name}},
		Data: locations.AccessSecretData(access),
		Type: corev1.SecretTypeOpaque,
	}
	if err := r.Client.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating access Secret %s/%s: %w", r.Namespace, name, err)
	}
	return name, nil
}

// dropAccess deletes the Backup's access Secret: the copy no longer needs it.
func (r *BackupReconciler) dropAccess(ctx context.Context, b *storkv1.Backup) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: accessName(b)}}
	return client.IgnoreNotFound(r.Client.Delete(ctx, s))
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
