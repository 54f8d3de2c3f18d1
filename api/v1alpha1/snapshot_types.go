package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SnapshotSource says which PersistentVolumeClaims of the Snapshot's namespace to capture:
// exactly one of claimName, selector or wholeNamespace.
// +kubebuilder:validation:XValidation:rule="[has(self.claimName), has(self.selector), has(self.wholeNamespace) && self.wholeNamespace].filter(x, x).size() == 1",message="set exactly one of source.claimName, source.selector or source.wholeNamespace: true"
type SnapshotSource struct {
	// ClaimName captures one PersistentVolumeClaim.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName,omitempty"`
	// Selector captures the PersistentVolumeClaims with these labels (and, with
	// includeResources, the namespace's objects with these labels).
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// WholeNamespace captures every PersistentVolumeClaim of the namespace.
	// +optional
	WholeNamespace bool `json:"wholeNamespace,omitempty"`
}

// HookErrorPolicy says what a failed hook does to its Snapshot.
// +kubebuilder:validation:Enum=Fail;Continue
type HookErrorPolicy string

const (
	// HookFail fails the Snapshot (post-hooks still run, to thaw the app).
	HookFail HookErrorPolicy = "Fail"
	// HookContinue records the failure in status and goes on.
	HookContinue HookErrorPolicy = "Continue"
)

// Hook is a command run in the containers of selected pods, through pods/exec, before
// or after the volumes are captured (e.g. to flush and freeze a database).
type Hook struct {
	// Name identifies the hook in status and Events.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// PodSelector selects the pods, in the Snapshot's namespace, to run the command in.
	PodSelector metav1.LabelSelector `json:"podSelector"`
	// Container to run in; empty means the pod's first container.
	// +optional
	Container string `json:"container,omitempty"`
	// Command and its arguments; not run through a shell.
	// +kubebuilder:validation:MinItems=1
	Command []string `json:"command"`
	// Timeout of one run in one pod.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="timeout must be more than 0s and at most 1h"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// OnError is Fail (default) or Continue.
	// +optional
	// +kubebuilder:default=Fail
	OnError HookErrorPolicy `json:"onError,omitempty"`
}

// DeletionPolicy says what deleting an object does to the data it stands for.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	// DeletionDelete removes the driver's snapshot data (or the backup's data) too.
	DeletionDelete DeletionPolicy = "Delete"
	// DeletionRetain keeps the data; only the Kubernetes object goes.
	DeletionRetain DeletionPolicy = "Retain"
)

// HookStage is when a hook runs: before or after a Snapshot's capture, or in the pods a
// Restore brought back.
// +kubebuilder:validation:Enum=Pre;Post;Restore
type HookStage string

const (
	HookPre     HookStage = "Pre"
	HookPost    HookStage = "Post"
	HookRestore HookStage = "Restore"
)

// HookResult is how one hook went in one pod.
type HookResult struct {
	// Name of the hook.
	Name string `json:"name"`
	// Stage is Pre or Post.
	Stage HookStage `json:"stage"`
	// Pod the command ran in; empty when no pod matched the hook's selector.
	// +optional
	Pod string `json:"pod,omitempty"`
	// Container the command ran in.
	// +optional
	Container string `json:"container,omitempty"`
	// Succeeded is true when the command ran and exited with status 0.
	Succeeded bool `json:"succeeded"`
	// Message says what went wrong, or the tail of the command's output.
	// +optional
	Message string `json:"message,omitempty"`
	// Time the run ended.
	Time metav1.Time `json:"time"`
}

// SnapshotSpec says what to capture, how, and where to copy it.
type SnapshotSpec struct {
	// Source says which claims to capture. It cannot change.
	Source SnapshotSource `json:"source"`

	// IncludeResources also captures the namespace-scoped Kubernetes objects of the
	// selection, so that a Restore can rebuild the application. Needs a backupLocation.
	// +optional
	// +kubebuilder:default=false
	IncludeResources bool `json:"includeResources,omitempty"`

	// PreHooks run, in order, before the volumes are captured.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	PreHooks []Hook `json:"preHooks,omitempty"`
	// PostHooks run, in order, after the volumes are captured, also when capture failed.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	PostHooks []Hook `json:"postHooks,omitempty"`

	// BackupLocation, when set, copies the snapshot into that BackupLocation (in this
	// namespace) as a Backup. It cannot change.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	BackupLocation string `json:"backupLocation,omitempty"`

	// DeletionPolicy is Delete (default: the driver's snapshot data goes with the
	// object) or Retain.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// SnapshotPhase is where a Snapshot is in its life.
// +kubebuilder:validation:Enum=Pending;InProgress;Ready;Failed;Deleting
type SnapshotPhase string

const (
	SnapshotPending    SnapshotPhase = "Pending"
	SnapshotInProgress SnapshotPhase = "InProgress"
	SnapshotReady      SnapshotPhase = "Ready"
	SnapshotFailed     SnapshotPhase = "Failed"
	SnapshotDeleting   SnapshotPhase = "Deleting"
)

// VolumePhase is where the work on one volume is.
// +kubebuilder:validation:Enum=Pending;InProgress;Succeeded;Failed
type VolumePhase string

const (
	VolumePending    VolumePhase = "Pending"
	VolumeInProgress VolumePhase = "InProgress"
	VolumeSucceeded  VolumePhase = "Succeeded"
	VolumeFailed     VolumePhase = "Failed"
)

// SnapshotVolumeStatus is the state of one captured volume.
type SnapshotVolumeStatus struct {
	// ClaimName of the PersistentVolumeClaim.
	ClaimName string `json:"claimName"`
	// VolumeName of the bound PersistentVolume.
	// +optional
	VolumeName string `json:"volumeName,omitempty"`
	// Driver that owns the volume.
	// +optional
	Driver string `json:"driver,omitempty"`
	// Node that holds the volume's data, for node-local drivers.
	// +optional
	Node string `json:"node,omitempty"`
	// Topology of the volume's data.
	// +optional
	Topology Topology `json:"topology,omitempty"`
	// StorageClassName of the claim.
	// +optional
	StorageClassName string `json:"storageClassName,omitempty"`
	// Capacity the claim requested, for the claims a restore makes.
	// +optional
	Capacity *resource.Quantity `json:"capacity,omitempty"`
	// AccessModes of the claim.
	// +optional
	AccessModes []corev1.PersistentVolumeAccessMode `json:"accessModes,omitempty"`
	// SnapshotID is the driver's identifier of the captured data.
	// +optional
	SnapshotID string `json:"snapshotID,omitempty"`
	// SizeBytes is the size of the captured data.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// Phase of this volume's capture.
	// +optional
	Phase VolumePhase `json:"phase,omitempty"`
	// Reason is a CamelCase word for why the phase is what it is.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says it to a person.
	// +optional
	Message string `json:"message,omitempty"`
	// Progress of this volume's capture.
	// +optional
	Progress Progress `json:"progress,omitempty"`
}

// SnapshotStatus is how the capture went.
type SnapshotStatus struct {
	// Phase summarises the conditions.
	// +optional
	Phase SnapshotPhase `json:"phase,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Valid, Progressing, Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Volumes captured, one entry per claim.
	// +optional
	// +listType=map
	// +listMapKey=claimName
	Volumes []SnapshotVolumeStatus `json:"volumes,omitempty"`
	// Progress over all volumes.
	// +optional
	Progress Progress `json:"progress,omitempty"`
	// Hooks lists how each hook went in each pod, in the order they ran.
	// +optional
	// +listType=atomic
	Hooks []HookResult `json:"hooks,omitempty"`
	// BackupName is the Backup that copies this Snapshot to its backupLocation.
	// +optional
	BackupName string `json:"backupName,omitempty"`
	// TimeRange of the capture.
	// +optional
	TimeRange `json:",inline"`
}

// Snapshot is a point-in-time, group-consistent capture of an application's volumes.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ssnap,categories=stork
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Volumes",type=integer,JSONPath=`.status.progress.itemsTotal`
// +kubebuilder:printcolumn:name="Bytes",type=integer,JSONPath=`.status.progress.bytesTotal`,priority=1
// +kubebuilder:printcolumn:name="Location",type=string,JSONPath=`.spec.backupLocation`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// The immutability rules sit here rather than on SnapshotSpec because schedules embed
// SnapshotSpec in their template, which users may edit.
// +kubebuilder:validation:XValidation:rule="self.spec.source == oldSelf.spec.source",fieldPath=".spec.source",message="spec.source is immutable: a Snapshot captures one point in time; create a new Snapshot"
// +kubebuilder:validation:XValidation:rule="has(self.spec.backupLocation) == has(oldSelf.spec.backupLocation) && (!has(self.spec.backupLocation) || self.spec.backupLocation == oldSelf.spec.backupLocation)",fieldPath=".spec.backupLocation",message="spec.backupLocation is immutable; create a Backup for this Snapshot instead"
// +kubebuilder:validation:XValidation:rule="self.spec.includeResources == oldSelf.spec.includeResources",fieldPath=".spec.includeResources",message="spec.includeResources is immutable"
// +kubebuilder:validation:XValidation:rule="!self.spec.includeResources || has(self.spec.backupLocation)",fieldPath=".spec.includeResources",message="spec.includeResources needs spec.backupLocation: Kubernetes objects are kept in a backup location"
type Snapshot struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SnapshotSpec   `json:"spec"`
	Status SnapshotStatus `json:"status,omitempty"`
}

// SnapshotList is a list of Snapshots.
// +kubebuilder:object:root=true
type SnapshotList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Snapshot `json:"items"`
}
