package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RestoreSource is what to restore from: exactly one of snapshotName or backupName.
// +kubebuilder:validation:XValidation:rule="has(self.snapshotName) != has(self.backupName)",message="set exactly one of source.snapshotName or source.backupName"
type RestoreSource struct {
	// SnapshotName restores a Snapshot of this namespace on the cluster that took it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SnapshotName string `json:"snapshotName,omitempty"`
	// Namespace of the Snapshot, when it is not the Restore's own. Only Restores in Stork's
	// namespace (stork-system) may name another namespace, or restore into namespaces other
	// than their own: that is what lets an administrator move data between namespaces while
	// a namespace's users can only restore within it.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// BackupName restores a Backup of this namespace, from any cluster that can read
	// its location.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	BackupName string `json:"backupName,omitempty"`
}

// AnnotationRestoredBy marks the claims and objects a Restore made, with the Restore's UID: one
// that exists without it is someone else's and is never overwritten unless the policy says so.
// Strip removes it from backed-up objects, since it describes the source cluster's history.
const AnnotationRestoredBy = "stork.dev/restored-by"

// ZoneMappingMode says how restored volumes are placed across zones.
// +kubebuilder:validation:Enum=Keep;Map;Spread
type ZoneMappingMode string

const (
	// ZoneKeep puts each volume in the zone it came from.
	ZoneKeep ZoneMappingMode = "Keep"
	// ZoneMap puts each volume in the zone its source zone maps to; an unmapped
	// source zone fails that volume.
	ZoneMap ZoneMappingMode = "Map"
	// ZoneSpread spreads the volumes over the target cluster's zones.
	ZoneSpread ZoneMappingMode = "Spread"
)

// ZoneMapping says where restored volumes go.
// +kubebuilder:validation:XValidation:rule="self.mode == 'Map' ? has(self.zones) && size(self.zones) > 0 : !has(self.zones) || size(self.zones) == 0",message="zoneMapping.zones is required with mode Map and not allowed otherwise"
type ZoneMapping struct {
	// Mode is Keep (default), Map or Spread.
	// +kubebuilder:default=Keep
	Mode ZoneMappingMode `json:"mode"`
	// Zones maps a source zone to a target zone, with mode Map.
	// +optional
	Zones map[string]string `json:"zones,omitempty"`
}

// ExistingObjectPolicy says what a restore does with an object that already exists.
// +kubebuilder:validation:Enum=Fail;Skip;Update
type ExistingObjectPolicy string

const (
	// ExistingFail fails that object (the default): nothing is overwritten.
	ExistingFail ExistingObjectPolicy = "Fail"
	// ExistingSkip leaves the existing object as it is.
	ExistingSkip ExistingObjectPolicy = "Skip"
	// ExistingUpdate replaces the existing object's spec (for a PVC: its data).
	ExistingUpdate ExistingObjectPolicy = "Update"
)

// RestoreSpec says what to restore and how to map it into this cluster.
// +kubebuilder:validation:XValidation:rule="!has(self.verify) || !self.verify || has(self.source.backupName)",message="spec.verify needs spec.source.backupName: a Snapshot is restored by copying it on its node, and only a Backup records the checksums to verify against"
// +kubebuilder:validation:XValidation:rule="!has(self.paths) || size(self.paths) == 0 || has(self.source.backupName)",message="spec.paths needs spec.source.backupName: a Snapshot is restored whole"
// +kubebuilder:validation:XValidation:rule="!has(self.hooks) || size(self.hooks) == 0 || has(self.source.backupName)",message="spec.hooks needs spec.source.backupName: only Backups restore the pods hooks run in"
// +kubebuilder:validation:XValidation:rule="!has(self.paths) || size(self.paths) == 0 || !has(self.verify) || !self.verify",message="spec.verify compares whole volumes with their backup: it cannot be combined with spec.paths"
type RestoreSpec struct {
	// Source to restore from.
	Source RestoreSource `json:"source"`
	// NamespaceMapping maps a source namespace to a target namespace; unmapped
	// namespaces restore into themselves.
	// +optional
	NamespaceMapping map[string]string `json:"namespaceMapping,omitempty"`
	// Claims restores only these claims (by their source names); empty restores every claim
	// of the source.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	Claims []string `json:"claims,omitempty"`
	// ClaimNameMapping renames PersistentVolumeClaims: source name to target name.
	// +optional
	ClaimNameMapping map[string]string `json:"claimNameMapping,omitempty"`
	// StorageClassMapping maps a source StorageClass to a target StorageClass.
	// +optional
	StorageClassMapping map[string]string `json:"storageClassMapping,omitempty"`
	// ZoneMapping says in which zones the volumes are restored.
	// +optional
	ZoneMapping *ZoneMapping `json:"zoneMapping,omitempty"`
	// VolumesOnly restores the volumes (as PVCs) and none of the other objects.
	// +optional
	VolumesOnly bool `json:"volumesOnly,omitempty"`
	// IncludeKinds restores only objects of these kinds (e.g. ConfigMap, Deployment);
	// empty means all kinds in the backup.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	IncludeKinds []string `json:"includeKinds,omitempty"`
	// ExcludeKinds never restores objects of these kinds.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ExcludeKinds []string `json:"excludeKinds,omitempty"`
	// ExistingObjectPolicy is Fail (default), Skip or Update.
	// +optional
	// +kubebuilder:default=Fail
	ExistingObjectPolicy ExistingObjectPolicy `json:"existingObjectPolicy,omitempty"`
	// Verify reads each volume back once restored and compares every file (content, size,
	// type, mode, times, links) with the checksums the backup recorded when it read the
	// source; a volume that differs fails, naming what differs. Restores from Backups only.
	// +optional
	Verify bool `json:"verify,omitempty"`
	// Paths restores only these files and directories (with what is below them) of each
	// volume: slash-separated, relative to the volume's root, e.g. "db/pg_wal" or
	// "uploads/2026". Each restored claim then holds just those paths. A path that is not in a
	// volume's backup fails that volume, naming it. Restores from Backups only.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.all(p, !p.matches('(^|/)[.][.](/|$)'))",message="spec.paths are paths inside the volume: no '..' segments"
	// +listType=set
	Paths []string `json:"paths,omitempty"`
	// Transforms change restored objects of a kind with JSON patches (RFC 6902) before they
	// are created: scale a Deployment to 0 in a DR cluster, point an Ingress at another host,
	// add an init container. Applied in order, after the namespace, claim and storage class
	// mappings.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Transforms []ResourceTransform `json:"transforms,omitempty"`
	// Hooks run commands, through pods/exec, in the restored application's pods once its
	// objects are restored and a selected pod is Ready (a database's recovery check, a cache
	// warm-up, a probe of a drill), in order. The podSelector selects in the namespace the
	// backup's namespace maps to. A hook with onError Fail (the default) that fails makes the
	// Restore PartiallyFailed. Work that must run before the application starts goes in
	// spec.initHooks.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Hooks []RestoreHook `json:"hooks,omitempty"`
	// InitHooks add init containers to the restored pods and workloads they select, before
	// these are created (after spec.transforms). Restores from Backups only.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	InitHooks []InitHook `json:"initHooks,omitempty"`
}

// InitHook adds init containers to restored pods, and to the pod templates of restored
// workloads (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs), whose labels
// podSelector selects, before they are created: work that must run before the application
// starts, such as a database's recovery from its restored files. They run before the object's
// own init containers.
type InitHook struct {
	// Name identifies the hook in Events.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// PodSelector selects pods and pod templates by their labels; empty selects all.
	PodSelector metav1.LabelSelector `json:"podSelector"`
	// InitContainers to add. A container whose name the pod already uses is not added twice.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	InitContainers []corev1.Container `json:"initContainers"`
}

// RestoreHook is a command run in restored pods.
type RestoreHook struct {
	Hook `json:",inline"`
	// WaitTimeout is how long the hook waits for a selected pod to be Ready after the objects
	// are restored; none Ready by then fails the hook. Default 5m.
	// +optional
	// +kubebuilder:default="5m"
	WaitTimeout *metav1.Duration `json:"waitTimeout,omitempty"`
}

// ResourceTransform is a JSON patch for the restored objects of one kind.
type ResourceTransform struct {
	// Kind of the objects to patch, one of the kinds backups hold (e.g. Deployment).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// Names limits the patch to objects of these names (as restored, after claimNameMapping);
	// empty patches every object of the kind.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Names []string `json:"names,omitempty"`
	// Patch is the list of operations. An operation that cannot apply (a "test" that fails,
	// a path that does not exist) fails that object, naming the transform.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Patch []JSONPatchOperation `json:"patch"`
}

// JSONPatchOperation is one RFC 6902 operation.
// +kubebuilder:validation:XValidation:rule="self.op in ['move', 'copy'] == has(self.from)",message="from is required with op move or copy, and only then"
type JSONPatchOperation struct {
	// Op is add, remove, replace, move, copy or test.
	// +kubebuilder:validation:Enum=add;remove;replace;move;copy;test
	Op string `json:"op"`
	// Path is a JSON pointer, e.g. /spec/replicas or /metadata/labels/tier.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^(/.*)?$`
	Path string `json:"path"`
	// From is the source pointer of move and copy.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^(/.*)?$`
	From string `json:"from,omitempty"`
	// Value of add, replace and test (required there): any JSON value. CEL cannot see into a
	// schemaless field, so the controller checks it (the Restore fails InvalidTransforms).
	// +optional
	Value *apiextensionsv1.JSON `json:"value,omitempty"`
}

// RestorePhase is where a Restore is in its life.
// +kubebuilder:validation:Enum=Pending;InProgress;Completed;PartiallyFailed;Failed;Cancelled
type RestorePhase string

const (
	RestorePending         RestorePhase = "Pending"
	RestoreInProgress      RestorePhase = "InProgress"
	RestoreCompleted       RestorePhase = "Completed"
	RestorePartiallyFailed RestorePhase = "PartiallyFailed"
	RestoreFailed          RestorePhase = "Failed"
	// RestoreCancelled: the Restore was deleted before it finished.
	RestoreCancelled RestorePhase = "Cancelled"
)

// RestoreVolumeStatus is the state of one restored volume.
type RestoreVolumeStatus struct {
	// SourceClaim is the claim's name in the source.
	SourceClaim string `json:"sourceClaim"`
	// TargetNamespace the claim is restored into.
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// TargetClaim is the restored claim's name.
	// +optional
	TargetClaim string `json:"targetClaim,omitempty"`
	// Node the data was restored on, for node-local drivers.
	// +optional
	Node string `json:"node,omitempty"`
	// Zone the data was restored in.
	// +optional
	Zone string `json:"zone,omitempty"`
	// Phase of this volume's restore.
	// +optional
	Phase VolumePhase `json:"phase,omitempty"`
	// Reason is a CamelCase word for why the phase is what it is.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says it to a person.
	// +optional
	Message string `json:"message,omitempty"`
	// Progress of this volume's restore: bytes, and files as items for restores from backups.
	// +optional
	Progress Progress `json:"progress,omitempty"`
	// Verification of the restored volume, with spec.verify.
	// +optional
	Verification *Verification `json:"verification,omitempty"`
}

// ObjectResult says what happened to one restored Kubernetes object.
type ObjectResult struct {
	// Kind of the object.
	Kind string `json:"kind"`
	// Namespace the object was restored into.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Name of the object.
	Name string `json:"name"`
	// Result: Created, Updated, Skipped or Failed.
	// +kubebuilder:validation:Enum=Created;Updated;Skipped;Failed
	Result string `json:"result"`
	// Message says why, for Skipped and Failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// RestoreStatus is how the restore went.
type RestoreStatus struct {
	// Phase summarises the conditions.
	// +optional
	Phase RestorePhase `json:"phase,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Valid, Progressing, Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Volumes restored, one entry per source claim.
	// +optional
	// +listType=map
	// +listMapKey=sourceClaim
	Volumes []RestoreVolumeStatus `json:"volumes,omitempty"`
	// Objects restored, with their results.
	// +optional
	Objects []ObjectResult `json:"objects,omitempty"`
	// Progress over all volumes.
	// +optional
	Progress Progress `json:"progress,omitempty"`
	// ObjectsRestoredTime is when the objects were restored, after the volumes: hooks wait
	// for their pods from then on.
	// +optional
	ObjectsRestoredTime *metav1.Time `json:"objectsRestoredTime,omitempty"`
	// Retry is the step being tried again after failing, when there is one: it fails the
	// object at retry.giveUpTime.
	// +optional
	Retry *Retry `json:"retry,omitempty"`
	// Hooks that ran, one result per hook and pod, in order.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Hooks []HookResult `json:"hooks,omitempty"`
	// TimeRange of the restore.
	// +optional
	TimeRange `json:",inline"`
}

// Restore brings a Snapshot or a Backup back as new PersistentVolumeClaims and objects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=srestore,categories=stork
// +kubebuilder:printcolumn:name="Snapshot",type=string,JSONPath=`.spec.source.snapshotName`
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.spec.source.backupName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Done",type=integer,JSONPath=`.status.progress.bytesDone`,priority=1
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.progress.bytesTotal`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.spec == oldSelf.spec",fieldPath=".spec",message="spec is immutable: a Restore is one request; create a new Restore"
type Restore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RestoreSpec   `json:"spec"`
	Status RestoreStatus `json:"status,omitempty"`
}

// RestoreList is a list of Restores.
// +kubebuilder:object:root=true
type RestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Restore `json:"items"`
}
