package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionVerified is set on a Backup by restore drills: True when the last drill of it
// restored and verified every file, False (with the drill's reason) when it failed.
const ConditionVerified = "Verified"

// ConditionPassed is True when a RestoreDrill's last run restored and verified its backup.
const ConditionPassed = "Passed"

// Labels and annotations a drill puts on the objects it makes, so that they can be found and
// cleaned up whatever happens to the drill's status.
const (
	// LabelDrillUID is on a drill's sandbox namespaces and Restores: the drill's UID.
	LabelDrillUID = "stork.dev/drill-uid"
	// AnnotationDrill is on a drill's Restores: "namespace/name" of the drill.
	AnnotationDrill = "stork.dev/drill"
)

// KeepSandbox says when a drill leaves its sandbox namespace behind.
// +kubebuilder:validation:Enum=Never;OnFailure;Always
type KeepSandbox string

const (
	// KeepNever deletes the sandbox after every run (the default).
	KeepNever KeepSandbox = "Never"
	// KeepOnFailure keeps the sandbox of a failed run, to look at what was restored.
	KeepOnFailure KeepSandbox = "OnFailure"
	// KeepAlways keeps every sandbox.
	KeepAlways KeepSandbox = "Always"
)

// RestoreDrillSpec says which application's backups to restore, how often and where.
// +kubebuilder:validation:XValidation:rule="has(self.scheduleName) != has(self.backupName)",message="set exactly one of spec.scheduleName (drill the newest Completed backup of that SnapshotSchedule) or spec.backupName (drill that Backup)"
// +kubebuilder:validation:XValidation:rule="!has(self.hooks) || size(self.hooks) == 0 || !has(self.volumesOnly) || !self.volumesOnly",message="spec.hooks run in restored pods: with spec.volumesOnly no pod is restored"
type RestoreDrillSpec struct {
	// ScheduleName drills the newest Completed Backup made by this SnapshotSchedule of the
	// drill's namespace, at each run.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ScheduleName string `json:"scheduleName,omitempty"`
	// BackupName drills this Backup of the drill's namespace (in Stork's namespace: a Backup
	// another cluster wrote, imported by its location's sync, which drills a restore at a
	// disaster-recovery site).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	BackupName string `json:"backupName,omitempty"`
	// Schedule runs the drill on a cron schedule (the forms SnapshotSchedule accepts); empty
	// runs it once, when it is created.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every [0-9][0-9a-z.]*|[^ ]+( +[^ ]+){4,5})$')",message="schedule must be a cron expression of 5 or 6 fields, @every DURATION, or @hourly/@daily/@weekly/@monthly/@yearly"
	Schedule string `json:"schedule,omitempty"`
	// TimeZone of the schedule, an IANA name such as Europe/Paris. Default UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	TimeZone string `json:"timeZone,omitempty"`
	// Suspend stops new runs; a run already going finishes.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// StorageClassMapping maps a source StorageClass to the one the sandbox's volumes use.
	// +optional
	StorageClassMapping map[string]string `json:"storageClassMapping,omitempty"`
	// ZoneMapping restores the sandbox's volumes in other zones (to prove a zone's loss is
	// survivable).
	// +optional
	ZoneMapping *ZoneMapping `json:"zoneMapping,omitempty"`
	// VolumesOnly restores only the volumes into the sandbox, none of the other objects (the
	// application's workloads then do not start there).
	// +optional
	VolumesOnly bool `json:"volumesOnly,omitempty"`
	// Hooks probe the restored application: commands run through pods/exec in its restored
	// pods once one they select is Ready (Restore spec.hooks); a probe with onError Fail that
	// fails fails the run. The run's RTO includes them: the application is back when it answers.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Hooks []RestoreHook `json:"hooks,omitempty"`
	// Timeout fails a run that has not finished after this long. Default 1h.
	// +optional
	// +kubebuilder:default="1h"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// KeepSandbox is Never (default), OnFailure or Always.
	// +optional
	// +kubebuilder:default=Never
	KeepSandbox KeepSandbox `json:"keepSandbox,omitempty"`
	// HistoryLimit is how many finished runs status.history keeps. Default 5.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	HistoryLimit int32 `json:"historyLimit,omitempty"`
}

// DrillResult is how a drill run ended.
// +kubebuilder:validation:Enum=Running;Passed;Failed
type DrillResult string

const (
	DrillRunning DrillResult = "Running"
	DrillPassed  DrillResult = "Passed"
	DrillFailed  DrillResult = "Failed"
)

// DrillRun is one run of a drill: a restore of one backup into a fresh sandbox namespace,
// verified file by file against the checksums the backup recorded.
type DrillRun struct {
	// BackupName is the Backup this run restored (empty if none could be chosen).
	// +optional
	BackupName string `json:"backupName,omitempty"`
	// Sandbox is the namespace the run restored into.
	// +optional
	Sandbox string `json:"sandbox,omitempty"`
	// RestoreName is the run's Restore, in Stork's namespace.
	// +optional
	RestoreName string `json:"restoreName,omitempty"`
	// StartTime is when the run started.
	StartTime metav1.Time `json:"startTime"`
	// CompletionTime is when the run ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Result is Running, Passed or Failed.
	Result DrillResult `json:"result"`
	// Reason is a CamelCase word for the result.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says it to a person; for a failure, what failed, naming the damaged object.
	// +optional
	Message string `json:"message,omitempty"`
	// RTO is the measured recovery time: from the run's start until the application's volumes
	// and objects were restored, not counting the verification that followed.
	// +optional
	RTO *metav1.Duration `json:"rto,omitempty"`
	// VerifiedFiles and VerifiedBytes: what the verification compared.
	// +optional
	VerifiedFiles int64 `json:"verifiedFiles,omitempty"`
	// +optional
	VerifiedBytes int64 `json:"verifiedBytes,omitempty"`
	// SandboxKept is true when the sandbox was left for inspection (spec.keepSandbox).
	// +optional
	SandboxKept bool `json:"sandboxKept,omitempty"`
}

// RestoreDrillStatus is what the drill's runs proved.
type RestoreDrillStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Valid, Passed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Current is the run going on, if any.
	// +optional
	Current *DrillRun `json:"current,omitempty"`
	// History of finished runs, newest first, at most spec.historyLimit.
	// +optional
	// +kubebuilder:validation:MaxItems=50
	History []DrillRun `json:"history,omitempty"`
	// LastScheduleTime is the cron time of the newest run started by the schedule.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextRunTime is when the schedule runs the drill next.
	// +optional
	NextRunTime *metav1.Time `json:"nextRunTime,omitempty"`
	// LastPassed is the newest run that passed, kept when history no longer holds it: its RTO
	// is the application's last proven RTO.
	// +optional
	LastPassed *DrillRun `json:"lastPassed,omitempty"`
}

// RestoreDrill proves that an application's backups restore: once or on a cron schedule it
// restores the newest backup into a sandbox namespace, compares every restored file with the
// checksums recorded at backup time, measures the recovery time, and removes the sandbox.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sdrill,categories=stork
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Last",type=string,JSONPath=`.status.history[0].result`
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.status.history[0].backupName`
// +kubebuilder:printcolumn:name="RTO",type=string,JSONPath=`.status.history[0].rto`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RestoreDrill struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RestoreDrillSpec   `json:"spec"`
	Status RestoreDrillStatus `json:"status,omitempty"`
}

// RestoreDrillList is a list of RestoreDrills.
// +kubebuilder:object:root=true
type RestoreDrillList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RestoreDrill `json:"items"`
}
