package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels on VolumeTasks: agents watch only the tasks of their node and driver.
const (
	LabelTaskNode   = "stork.dev/node"
	LabelTaskDriver = "stork.dev/driver"
)

// VolumeTaskType is the work a VolumeTask asks for.
// +kubebuilder:validation:Enum=Snapshot;DeleteSnapshot;Restore;Upload;Download;DeleteVolume
type VolumeTaskType string

const (
	// TaskSnapshot captures a volume on its node.
	TaskSnapshot VolumeTaskType = "Snapshot"
	// TaskDeleteSnapshot removes a captured snapshot's data.
	TaskDeleteSnapshot VolumeTaskType = "DeleteSnapshot"
	// TaskRestore makes a new volume from a snapshot on the node.
	TaskRestore VolumeTaskType = "Restore"
	// TaskUpload copies a snapshot into a BackupLocation.
	TaskUpload VolumeTaskType = "Upload"
	// TaskDownload makes a new volume from a backup in a BackupLocation.
	TaskDownload VolumeTaskType = "Download"
	// TaskDeleteVolume removes a volume a Restore or Download task made that was never handed
	// over (its Restore cancelled, its failover cancelled), once no task still makes it.
	TaskDeleteVolume VolumeTaskType = "DeleteVolume"
)

// VolumeTaskSpec is one unit of work on one volume, for the agent on one node. Stork's
// controllers create VolumeTasks; the agent of spec.nodeName (and only that one) does them.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new VolumeTask"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['Upload', 'Download']) || has(self.backupLocation)",message="backupLocation is required for Upload and Download tasks"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['DeleteSnapshot', 'Restore', 'Upload']) || has(self.snapshotID)",message="snapshotID is required for DeleteSnapshot, Restore and Upload tasks"
type VolumeTaskSpec struct {
	// Type of work.
	Type VolumeTaskType `json:"type"`
	// Driver that does the work.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Driver string `json:"driver"`
	// NodeName whose agent does the work. Empty for work done by a data mover pod (the csi
	// driver's), which runs on a node chosen when the pod is made.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName,omitempty"`
	// VolumeName is the PersistentVolume to read (Snapshot, Upload) or, for Restore and
	// Download, the name to give the new volume.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	VolumeName string `json:"volumeName"`
	// SourcePath is the volume's directory on the node, for node-local drivers' Snapshot
	// and Upload tasks; the agent refuses paths outside its storage root.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	SourcePath string `json:"sourcePath,omitempty"`
	// SnapshotID is the driver's snapshot to delete, restore or upload.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	SnapshotID string `json:"snapshotID,omitempty"`
	// BackupLocation, in the task's namespace, for Upload and Download.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	BackupLocation string `json:"backupLocation,omitempty"`
	// AccessSecretName names a Secret in Stork's namespace that holds what an Upload or
	// Download needs to reach the location (URL, store options, credentials, repository
	// passphrase). The controller makes it for the task and deletes it afterwards, so agents
	// read Secrets in Stork's namespace only, never the application's.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	AccessSecretName string `json:"accessSecretName,omitempty"`
	// RepositorySnapshotID is the backup to download, for Download.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	RepositorySnapshotID string `json:"repositorySnapshotID,omitempty"`
	// Tags recorded with an upload (cluster, namespace, claim, snapshot, zone).
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// StrictChangeDetection makes an Upload read every file, as its BackupLocation asks.
	// +optional
	StrictChangeDetection bool `json:"strictChangeDetection,omitempty"`
	// Verify makes a Download read the volume back once written and compare every file with
	// the backup (archive.Verify); a difference fails the task with VerificationFailed.
	// +optional
	Verify bool `json:"verify,omitempty"`
	// Paths makes a Download restore only these slash-separated paths of the backup (and what
	// is below them); empty restores everything.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Paths []string `json:"paths,omitempty"`
}

// VolumeTaskPhase is where a VolumeTask is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type VolumeTaskPhase string

const (
	TaskPending   VolumeTaskPhase = "Pending"
	TaskRunning   VolumeTaskPhase = "Running"
	TaskSucceeded VolumeTaskPhase = "Succeeded"
	TaskFailed    VolumeTaskPhase = "Failed"
)

// VolumeTaskStatus is written by the agent doing the task.
type VolumeTaskStatus struct {
	// Phase of the task.
	// +optional
	Phase VolumeTaskPhase `json:"phase,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Progressing, Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Progress of the work.
	// +optional
	Progress Progress `json:"progress,omitempty"`
	// Attempts counts the times an agent started the task; a restarted agent resumes or
	// fails the task, and gives up after a bounded number of attempts.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// AgentID identifies the agent process that last worked on the task.
	// +optional
	AgentID string `json:"agentID,omitempty"`
	// SnapshotID made by a Snapshot task.
	// +optional
	SnapshotID string `json:"snapshotID,omitempty"`
	// RepositorySnapshotID made by an Upload task.
	// +optional
	RepositorySnapshotID string `json:"repositorySnapshotID,omitempty"`
	// Path of the volume made by a Restore or Download task, on the node.
	// +optional
	Path string `json:"path,omitempty"`
	// SizeBytes of the data the task produced.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
	// Verification of a Download's volume, when spec.verify asked for it.
	// +optional
	Verification *Verification `json:"verification,omitempty"`
	// Reason is a CamelCase word for why the task failed.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says it to a person.
	// +optional
	Message string `json:"message,omitempty"`
	// TimeRange of the work.
	// +optional
	TimeRange `json:",inline"`
}

// VolumeTask is one unit of work on one volume for the agent of one node: the way Stork's
// controllers hand work to node agents through the API server rather than by RPC, so that
// either side can restart and pick the work up from the objects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vtask,categories=stork
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Volume",type=string,JSONPath=`.spec.volumeName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Done",type=integer,JSONPath=`.status.progress.bytesDone`,priority=1
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.progress.bytesTotal`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VolumeTask struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VolumeTaskSpec   `json:"spec"`
	Status VolumeTaskStatus `json:"status,omitempty"`
}

// VolumeTaskList is a list of VolumeTasks.
// +kubebuilder:object:root=true
type VolumeTaskList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VolumeTask `json:"items"`
}
