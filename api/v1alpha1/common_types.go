package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types shared by several kinds. Each kind documents which it sets.
const (
	// ConditionReady is True when the object's work is complete and usable
	// (a Snapshot that can be restored, a Backup that is safely in its location, …).
	ConditionReady = "Ready"
	// ConditionAvailable is True when a BackupLocation can be read and, unless it is
	// read-only, written.
	ConditionAvailable = "Available"
	// ConditionReadable is True on a BackupLocation that is not Available because the store
	// refuses its writes, but whose repository can still be read: restores from it run,
	// backups to it wait (and in the end fail) until writes are allowed again.
	ConditionReadable = "Readable"
	// ConditionValid is False when the spec cannot be acted on (unknown PVC, PVC of
	// another driver, unknown time zone, …); the message names the field.
	ConditionValid = "Valid"
	// ConditionProgressing is True while work is being done.
	ConditionProgressing = "Progressing"
	// ConditionRPOMet is True while a schedule's newest Completed Backup is within its RPO.
	ConditionRPOMet = "RPOMet"
	// ConditionRTOMet is True when the last restore drill of a schedule's backups finished
	// within its RTO.
	ConditionRTOMet = "RTOMet"
)

// Retry is a step of the work that is failing and being tried again, with backoff, until
// GiveUpTime: then the object fails with the step's reason and how often it was tried.
type Retry struct {
	// Reason names the step, e.g. SavingResources.
	Reason string `json:"reason"`
	// Message is the last attempt's error.
	// +optional
	Message string `json:"message,omitempty"`
	// Since is when the step first failed.
	Since metav1.Time `json:"since"`
	// Attempts counts the failed attempts.
	Attempts int32 `json:"attempts"`
	// GiveUpTime is when the step stops being tried.
	GiveUpTime metav1.Time `json:"giveUpTime"`
	// NextAttemptTime is when the step is tried again: nothing is tried before, whatever
	// wakes the controller up.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`
}

// Progress counts work done against work known. Totals may grow while work is
// discovered, so done/total is a lower bound of the fraction left until Phase is final.
type Progress struct {
	// BytesDone is how many bytes have been processed.
	// +optional
	BytesDone int64 `json:"bytesDone,omitempty"`
	// BytesTotal is how many bytes there are to process, when known.
	// +optional
	BytesTotal int64 `json:"bytesTotal,omitempty"`
	// BytesSkipped is the part of bytesDone a backup took from the claim's previous backup
	// without reading it: files whose path, size, modification time, mode and owner are
	// unchanged. bytesDone - bytesSkipped were read.
	// +optional
	BytesSkipped int64 `json:"bytesSkipped,omitempty"`
	// ItemsDone counts finished items (files, volumes or objects, as the owner says).
	// +optional
	ItemsDone int64 `json:"itemsDone,omitempty"`
	// ItemsTotal counts items to process, when known.
	// +optional
	ItemsTotal int64 `json:"itemsTotal,omitempty"`
}

// Verification is what reading a restored volume back and comparing it with its backup found,
// when the restore asked for it (Restore spec.verify). A volume that differs fails instead, with
// the differing paths in its message.
type Verification struct {
	// Files compared with the backup's checksums, every byte of each.
	Files int64 `json:"files"`
	// Bytes compared.
	Bytes int64 `json:"bytes"`
	// Duration of the comparison, which the restore's time includes.
	Duration metav1.Duration `json:"duration"`
}

// SecretKeyReference names one key of a Secret in the namespace of the object that holds it.
type SecretKeyReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// SecretReference names a Secret in the namespace of the object that holds it.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Topology is where something lives, from the widest failure domain to the narrowest.
type Topology struct {
	// Region, from the node label topology.kubernetes.io/region.
	// +optional
	Region string `json:"region,omitempty"`
	// Zone, from the node label topology.kubernetes.io/zone.
	// +optional
	Zone string `json:"zone,omitempty"`
	// Rack, from the node label stork.dev/rack.
	// +optional
	Rack string `json:"rack,omitempty"`
}

// Labels on Nodes that Stork reads for topology. Region and zone are the well-known
// Kubernetes labels; Kubernetes has none for racks.
const (
	LabelRegion = "topology.kubernetes.io/region"
	LabelZone   = "topology.kubernetes.io/zone"
	LabelRack   = "stork.dev/rack"
)

// TimeRange is when work started and ended.
type TimeRange struct {
	// StartTime is when the work started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the work reached a final phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}
