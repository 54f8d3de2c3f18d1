package v1alpha1

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupSpec names the Snapshot to copy and the location to copy it to.
// +kubebuilder:validation:XValidation:rule="has(self.snapshotName) == has(oldSelf.snapshotName)",message="snapshotName is immutable"
type BackupSpec struct {
	// SnapshotName is the Snapshot, in this namespace, that this Backup copies. Empty
	// for Backups imported by sync from a location another cluster writes.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="snapshotName is immutable"
	SnapshotName string `json:"snapshotName,omitempty"`
	// BackupLocation, in this namespace, that holds the backup.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="backupLocation is immutable"
	BackupLocation string `json:"backupLocation"`
	// DeletionPolicy is Delete (default: deleting the Backup removes its data from the
	// location, and the location's next prune frees the space) or Retain (the data stays,
	// and sync brings the Backup back). Sync makes imported Backups with Retain, and the
	// data of a ReadOnly location is never deleted.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// ConditionSigned is on Backups imported from a location: True when the backup's record carries
// a valid signature of the repository's key (the MAC of the key every cluster sharing the
// location holds), False (Unsigned) for records older Storks wrote without one. A record whose
// signature does not verify is not imported at all, and a Restore re-reads and checks the
// record before it restores anything.
const ConditionSigned = "Signed"

// AnnotationSourceUID is on Backups imported from a location: the UID the Backup had in the
// cluster that made it, which its record and repository snapshots are tagged with.
const AnnotationSourceUID = "stork.dev/source-uid"

// BackupPhase is where a Backup is in its life.
// +kubebuilder:validation:Enum=Pending;InProgress;Completed;PartiallyFailed;Failed;Deleting;Cancelled
type BackupPhase string

const (
	BackupPending         BackupPhase = "Pending"
	BackupInProgress      BackupPhase = "InProgress"
	BackupCompleted       BackupPhase = "Completed"
	BackupPartiallyFailed BackupPhase = "PartiallyFailed"
	BackupFailed          BackupPhase = "Failed"
	BackupDeleting        BackupPhase = "Deleting"
	// BackupCancelled: the Backup was deleted while copying; it goes once its uploads are
	// stopped and what they wrote is forgotten.
	BackupCancelled BackupPhase = "Cancelled"
)

// BackupVolume records one volume in a backup: enough to restore it in another cluster.
type BackupVolume struct {
	// ClaimName of the source PersistentVolumeClaim.
	ClaimName string `json:"claimName"`
	// Driver that owned the source volume.
	// +optional
	Driver string `json:"driver,omitempty"`
	// StorageClassName of the source claim.
	// +optional
	StorageClassName string `json:"storageClassName,omitempty"`
	// Topology of the source volume's data.
	// +optional
	Topology Topology `json:"topology,omitempty"`
	// SizeBytes is the claim's requested size.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// AccessModes of the source claim.
	// +optional
	AccessModes []corev1.PersistentVolumeAccessMode `json:"accessModes,omitempty"`
	// RepositorySnapshotID is the ID of the volume's tree in the backup repository.
	// +optional
	RepositorySnapshotID string `json:"repositorySnapshotID,omitempty"`
	// Phase of this volume's upload.
	// +optional
	Phase VolumePhase `json:"phase,omitempty"`
	// Reason is a CamelCase word for why the upload failed, when it did (UploadFailed,
	// RepositoryUnavailable, MoverFailed, …).
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says why the upload failed, when it did.
	// +optional
	Message string `json:"message,omitempty"`
	// Progress of this volume's upload: bytes, and files as items.
	// +optional
	Progress Progress `json:"progress,omitempty"`
}

// AnnotationCaptureTime on a Backup is when its Snapshot began capturing (RFC 3339, rounded
// down to the second): the point in time the backup restores to, which RPOs are measured from.
const AnnotationCaptureTime = "stork.dev/capture-time"

// CaptureTime is when the Backup's data was captured: its capture-time annotation, else (a
// Backup made before the annotation existed, or imported by sync) its creation, which is later.
func (b *Backup) CaptureTime() time.Time {
	if t, err := time.Parse(time.RFC3339, b.Annotations[AnnotationCaptureTime]); err == nil {
		return t
	}
	return b.CreationTimestamp.Time
}

// BackupStatus records what the backup holds and how the copy went.
type BackupStatus struct {
	// Phase summarises the conditions.
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Progressing, Ready, and Verified (set by RestoreDrills).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Cluster is the ID of the cluster the data came from.
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// SourceNamespace is the namespace the data came from.
	// +optional
	SourceNamespace string `json:"sourceNamespace,omitempty"`
	// Zones of the source volumes.
	// +optional
	Zones []string `json:"zones,omitempty"`
	// Volumes in the backup.
	// +optional
	// +listType=map
	// +listMapKey=claimName
	Volumes []BackupVolume `json:"volumes,omitempty"`
	// ResourceCount is how many Kubernetes objects the backup holds.
	// +optional
	ResourceCount int32 `json:"resourceCount,omitempty"`
	// ResourcesSnapshotID is the repository snapshot holding the Kubernetes objects, when
	// the Snapshot asked for them (spec.includeResources).
	// +optional
	ResourcesSnapshotID string `json:"resourcesSnapshotID,omitempty"`
	// RecordID is the repository snapshot holding the backup's record (what this status
	// says about volumes and objects). It is written last: a backup without one is not
	// complete, and sync never shows it.
	// +optional
	RecordID string `json:"recordID,omitempty"`
	// Progress over all volumes.
	// +optional
	Progress Progress `json:"progress,omitempty"`
	// Retry is the step being tried again after failing, when there is one: it fails the
	// object at retry.giveUpTime.
	// +optional
	Retry *Retry `json:"retry,omitempty"`
	// Imported is true for a Backup made by sync from its location's contents.
	// +optional
	Imported bool `json:"imported,omitempty"`
	// TimeRange of the copy.
	// +optional
	TimeRange `json:",inline"`
}

// Backup is a Snapshot's copy in a BackupLocation, with the application's Kubernetes objects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sbk,categories=stork
// +kubebuilder:printcolumn:name="Snapshot",type=string,JSONPath=`.spec.snapshotName`
// +kubebuilder:printcolumn:name="Location",type=string,JSONPath=`.spec.backupLocation`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Done",type=integer,JSONPath=`.status.progress.bytesDone`,priority=1
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.progress.bytesTotal`,priority=1
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.status.cluster`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BackupSpec   `json:"spec"`
	Status BackupStatus `json:"status,omitempty"`
}

// BackupList is a list of Backups.
// +kubebuilder:object:root=true
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}
