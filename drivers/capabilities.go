package drivers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// The capability interfaces below are level-based, like the controllers that call them: each
// call both starts the work (if not started yet) and reports how far it got, keyed by a request
// ID that stays the same across retries and restarts. A controller calls again until every
// volume is in a final phase. Drivers keep their progress in durable state (VolumeTasks, the
// storage system itself), never only in memory, so a restarted controller or agent finds it.

// Snapshotter takes point-in-time snapshots of volumes on their storage.
type Snapshotter interface {
	Driver
	// Snapshot captures req.Volumes as one group: the data of every volume is from the
	// same moment as far as the driver can make it so. It returns one status per volume,
	// in the order of req.Volumes.
	Snapshot(ctx context.Context, req SnapshotRequest) ([]VolumeStatus, error)
	// DeleteSnapshot removes a snapshot's data. It returns done=true once nothing is left;
	// deleting a snapshot that does not exist is done.
	DeleteSnapshot(ctx context.Context, ref SnapshotRef) (done bool, err error)
}

// Restorer makes new volumes from the driver's own snapshots.
type Restorer interface {
	Driver
	// Restore creates a volume with the snapshot's data and a PersistentVolume for it,
	// pre-bound to req.TargetNamespace/req.TargetClaim, so that a claim of that name binds
	// to it; the status's VolumeName names the PersistentVolume. A driver whose volumes are
	// provisioned from a data source (CSI) instead names the source in the status's
	// DataSource, and the claim is created with it.
	Restore(ctx context.Context, req RestoreRequest) (VolumeStatus, error)
}

// Exporter copies a snapshot's data to a backup location.
type Exporter interface {
	Driver
	// Export uploads the snapshot into the location's repository; the status's
	// RepositorySnapshotID names the result.
	Export(ctx context.Context, req ExportRequest) (VolumeStatus, error)
}

// Importer makes new volumes from backups in a backup location.
type Importer interface {
	Driver
	// Import creates a volume on storage in req.Topology with the backup's data and a
	// PersistentVolume pre-bound to the target claim, like Restorer.Restore.
	Import(ctx context.Context, req ImportRequest) (VolumeStatus, error)
}

// SnapshotRequest asks for a group snapshot of volumes.
type SnapshotRequest struct {
	// ID is stable for the request across retries (Stork uses the Snapshot's UID).
	ID string
	// Namespace of the Snapshot, where the driver may create work objects.
	Namespace string
	// Owner, if set, owns the work objects the driver creates, so that they go with it.
	Owner *metav1.OwnerReference
	// Volumes to capture, all owned by the driver and bound.
	Volumes []Volume
}

// SnapshotRef names one volume's snapshot for deletion or restore.
type SnapshotRef struct {
	// Namespace of the Snapshot that made it.
	Namespace string
	// VolumeName of the source PersistentVolume.
	VolumeName string
	// SnapshotID as returned in VolumeStatus.
	SnapshotID string
	// Node that holds it, for node-local drivers.
	Node string
}

// RestoreRequest asks for a new volume from a snapshot.
type RestoreRequest struct {
	// ID is stable for the request across retries (Stork uses the Restore's UID and the
	// source claim's name).
	ID string
	// Namespace of the Restore, where the driver may create work objects.
	Namespace string
	// Owner, if set, owns the work objects the driver creates.
	Owner *metav1.OwnerReference
	// Source is the snapshot to restore.
	Source SnapshotRef
	// TargetNamespace and TargetClaim are the claim the new volume is made for.
	TargetNamespace string
	TargetClaim     string
	// SizeBytes is the capacity of the new volume.
	SizeBytes int64
	// StorageClassName for the new PersistentVolume.
	StorageClassName string
	// AccessModes of the claim the volume is for (ReadWriteOnce when empty).
	AccessModes []corev1.PersistentVolumeAccessMode
}

// Discarder removes a volume the driver made for a restore (Restorer or Importer) that was never
// handed over: its Restore was deleted before the claim was bound to it, or the failover it was
// made for was cancelled. The making is stopped, and the PersistentVolume, if made, is deleted
// with the data. A volume whose claim is bound to it was handed over and is never discarded.
type Discarder interface {
	Driver
	// Discard reports Succeeded once nothing of the volume is left (at once when nothing was
	// made), Failed with the reason when it is not the driver's to remove.
	Discard(ctx context.Context, req DiscardRequest) (VolumeStatus, error)
}

// Reasons of a Discard that succeeded: the volume was removed, or nothing had been made.
const (
	ReasonDiscarded   = "Discarded"
	ReasonNothingMade = "NothingMade"
)

// DiscardRequest names a restored volume by the request that made it.
type DiscardRequest struct {
	// ID of the RestoreRequest or ImportRequest that made the volume.
	ID string
	// Namespace of the Restore, where the driver's work objects are.
	Namespace string
	// Owner, if set, owns the work objects the driver creates.
	Owner *metav1.OwnerReference
}

// ExportRequest asks for a snapshot's data to be copied to a backup location.
type ExportRequest struct {
	// ID is stable for the request across retries.
	ID string
	// Source is the snapshot to copy.
	Source SnapshotRef
	// Location is the BackupLocation (in Source.Namespace) to copy into.
	Location string
	// AccessSecret names the Secret, in Stork's namespace, with what the copy needs to reach
	// the location (see backup/engine/access.SecretData).
	AccessSecret string
	// Owner, if set, owns the work objects the driver creates.
	Owner *metav1.OwnerReference
	// Tags to record with the backup (cluster, namespace, claim, snapshot, zone).
	Tags map[string]string
	// StrictChangeDetection reads every file instead of taking those whose metadata is
	// unchanged from the claim's previous backup (BackupLocation.spec.strictChangeDetection).
	StrictChangeDetection bool
}

// ReasonNoHealthyStorage is the Reason of an import that waits because the target topology has
// storage but none of it is healthy now; the caller decides how long to wait.
const ReasonNoHealthyStorage = "NoHealthyStorageNode"

// ImportRequest asks for a new volume from a backup.
type ImportRequest struct {
	// ID is stable for the request across retries.
	ID string
	// Namespace of the Restore, where the driver may create work objects.
	Namespace string
	// Owner, if set, owns the work objects the driver creates.
	Owner *metav1.OwnerReference
	// Location is the BackupLocation (in Namespace) holding the backup.
	Location string
	// AccessSecret names the Secret, in Stork's namespace, with what the download needs to
	// reach the location (see backup/engine/access.SecretData).
	AccessSecret string
	// RepositorySnapshotID is the backup of the volume.
	RepositorySnapshotID string
	// Topology where the new volume must live: the driver puts it on storage in
	// Topology.Zone (and Region) when set, anywhere healthy otherwise.
	Topology storkv1.Topology
	// TargetNamespace and TargetClaim are the claim the new volume is made for.
	TargetNamespace string
	TargetClaim     string
	// SizeBytes is the capacity of the new volume.
	SizeBytes int64
	// DataBytes is how much data the backup holds (its bytesTotal): a driver that places the
	// volume on a node's storage picks one with room for it. 0 when unknown.
	DataBytes int64
	// StorageClassName for the new PersistentVolume.
	StorageClassName string
	// AccessModes of the claim the volume is for (ReadWriteOnce when empty).
	AccessModes []corev1.PersistentVolumeAccessMode
	// Verify asks for the new volume to be read back and compared with the backup before it
	// is handed over (VolumeStatus.Verification reports it).
	Verify bool
	// Paths, if set, restores only these slash-separated paths of the backup.
	Paths []string
}

// VolumeStatus is how far the work on one volume got.
type VolumeStatus struct {
	// VolumeName is the source PersistentVolume (snapshot, export) or the new one
	// (restore, import).
	VolumeName string
	// Phase of the work; Succeeded and Failed are final.
	Phase storkv1.VolumePhase
	// SnapshotID of a finished snapshot.
	SnapshotID string
	// RepositorySnapshotID of a finished export.
	RepositorySnapshotID string
	// Node that holds the result, for node-local drivers.
	Node string
	// SizeBytes of the result.
	SizeBytes int64
	// DataSource, for a restore, is what the target claim is provisioned from (a
	// VolumeSnapshot in the target namespace) when the driver made no PersistentVolume.
	DataSource *corev1.TypedLocalObjectReference
	// Progress of the work.
	Progress storkv1.Progress
	// Verification of an import that asked for it.
	Verification *storkv1.Verification
	// Reason and Message say why the work failed.
	Reason  string
	Message string
}

// Final reports whether the status will not change any more.
func (s VolumeStatus) Final() bool {
	return s.Phase == storkv1.VolumeSucceeded || s.Phase == storkv1.VolumeFailed
}

// ControllerOwner is a driver with controllers of its own (e.g. one that watches its agents'
// heartbeats). The stork controller sets them up on its manager.
type ControllerOwner interface {
	Driver
	SetupWithManager(mgr ctrl.Manager) error
}
