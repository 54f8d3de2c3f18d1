package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels a schedule puts on the Snapshots it makes, which the Snapshot controller copies onto
// their Backups: the schedule's name, and its UID (an earlier schedule of the same name is
// another schedule).
const (
	LabelSchedule    = "stork.dev/schedule"
	LabelScheduleUID = "stork.dev/schedule-uid"
)

// ConcurrencyPolicy says what a schedule does when a run is due while the previous one
// is still going.
// +kubebuilder:validation:Enum=Forbid;Allow
type ConcurrencyPolicy string

const (
	// ConcurrencyForbid skips the run (the default).
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyAllow starts it anyway.
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
)

// Retention says which of a schedule's Snapshots (and their Backups) to keep. A Snapshot
// is kept when any rule keeps it; with every rule zero, all are kept.
type Retention struct {
	// KeepLast keeps the newest N.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepLast int32 `json:"keepLast,omitempty"`
	// KeepHourly keeps the newest of each of the last N hours that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepHourly int32 `json:"keepHourly,omitempty"`
	// KeepDaily keeps the newest of each of the last N days that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepDaily int32 `json:"keepDaily,omitempty"`
	// KeepWeekly keeps the newest of each of the last N ISO weeks that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepWeekly int32 `json:"keepWeekly,omitempty"`
	// KeepMonthly keeps the newest of each of the last N months that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	KeepMonthly int32 `json:"keepMonthly,omitempty"`
}

// SnapshotTemplate is the Snapshot a schedule creates at each run.
type SnapshotTemplate struct {
	// Labels and annotations for the Snapshots.
	// +optional
	Metadata SnapshotTemplateMetadata `json:"metadata,omitempty"`
	// Spec of the Snapshots.
	Spec SnapshotSpec `json:"spec"`
}

// SnapshotTemplateMetadata is the part of ObjectMeta a template may set.
type SnapshotTemplateMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SnapshotScheduleSpec says when to take Snapshots and how many to keep.
// +kubebuilder:validation:XValidation:rule="!has(self.objectives) || !has(self.objectives.rpo) || (has(self.template.spec.backupLocation) && size(self.template.spec.backupLocation) > 0)",message="objectives.rpo needs template.spec.backupLocation: only a Backup in a location survives the loss of the node or the cluster"
type SnapshotScheduleSpec struct {
	// Schedule in cron format: five fields (minute hour day-of-month month day-of-week),
	// six with a leading seconds field, or a descriptor such as @hourly or @every 15m. The
	// time zone goes in timeZone. Daylight-saving transitions follow robfig/cron: a local time
	// that occurs twice may run twice, one that does not occur is skipped.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every [0-9][0-9a-z.]*|[^ ]+( +[^ ]+){4,5})$')",message="schedule must be a cron expression of 5 or 6 fields, @every DURATION, or @hourly/@daily/@weekly/@monthly/@yearly"
	Schedule string `json:"schedule"`
	// TimeZone of the schedule, an IANA name such as Europe/Paris. Default UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	TimeZone string `json:"timeZone,omitempty"`
	// Suspend stops new runs; runs already going finish.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// Template of the Snapshots to create.
	Template SnapshotTemplate `json:"template"`
	// Retention of the Snapshots this schedule created.
	// +optional
	Retention Retention `json:"retention,omitempty"`
	// BackupRetention of the Backups this schedule's Snapshots made (with
	// template.spec.backupLocation); unset means the same as retention. Backups usually
	// live longer than local snapshots: keep more of them here.
	// +optional
	BackupRetention *Retention `json:"backupRetention,omitempty"`
	// ConcurrencyPolicy is Forbid (default) or Allow.
	// +optional
	// +kubebuilder:default=Forbid
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`
	// Objectives declares how much data the application may lose (RPO) and how soon it must
	// be back (RTO). The schedule reports whether they are met in status.protection and the
	// conditions RPOMet and RTOMet, with Events when they change and Prometheus metrics.
	// +optional
	Objectives *Objectives `json:"objectives,omitempty"`
}

// Objectives are an application's recovery objectives. They live on the schedule that
// protects it rather than in a kind of their own: the schedule's cadence is what makes an RPO
// achievable, its template says which volumes and which location, and one object cannot
// disagree with itself.
// +kubebuilder:validation:XValidation:rule="has(self.rpo) || has(self.rto)",message="objectives: set rpo, rto or both"
type Objectives struct {
	// RPO (recovery point objective): at any time, a Completed Backup made by this schedule
	// must hold the application's data as of at most this long ago (measured from when its
	// Snapshot was captured). Needs template.spec.backupLocation. At least 1m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="objectives.rpo must be at least 1m"
	RPO *metav1.Duration `json:"rpo,omitempty"`
	// RTO (recovery time objective): how long a restore of the newest backup may take, as
	// proven by restore drills. At least 1m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="objectives.rto must be at least 1m"
	RTO *metav1.Duration `json:"rto,omitempty"`
}

// Protection is how the schedule's application stands against its objectives.
type Protection struct {
	// LastBackupName is the newest Completed Backup this schedule made.
	// +optional
	LastBackupName string `json:"lastBackupName,omitempty"`
	// LastBackupCaptureTime is when that Backup's data was captured: the application can be
	// brought back to this point.
	// +optional
	LastBackupCaptureTime *metav1.Time `json:"lastBackupCaptureTime,omitempty"`
	// RPODeadline is when the RPO is missed unless a newer backup completes first.
	// +optional
	RPODeadline *metav1.Time `json:"rpoDeadline,omitempty"`
	// LastProvenRTO is the recovery time the last passed RestoreDrill of this schedule measured.
	// +optional
	LastProvenRTO *metav1.Duration `json:"lastProvenRTO,omitempty"`
	// LastProvenTime is when that drill finished: the last time a restore of this
	// application was proven.
	// +optional
	LastProvenTime *metav1.Time `json:"lastProvenTime,omitempty"`
	// LastDrill names the newest finished RestoreDrill run of this schedule's backups and its
	// result, e.g. "nightly: Failed (VerificationFailed)".
	// +optional
	LastDrill string `json:"lastDrill,omitempty"`
	// EstimatedRTO is how long restoring the newest backup would take at the throughput of
	// the last Completed Restore of one of this schedule's backups in this cluster.
	// +optional
	EstimatedRTO *metav1.Duration `json:"estimatedRTO,omitempty"`
}

// ScheduleRun is one run of a schedule.
type ScheduleRun struct {
	// SnapshotName created by the run; empty when the run was skipped.
	// +optional
	SnapshotName string `json:"snapshotName,omitempty"`
	// ScheduledTime the run was due.
	ScheduledTime metav1.Time `json:"scheduledTime"`
	// Phase the Snapshot reached, or Skipped.
	// +optional
	Phase string `json:"phase,omitempty"`
	// Message about the run.
	// +optional
	Message string `json:"message,omitempty"`
}

// SnapshotScheduleStatus says when the schedule ran and what came of it.
type SnapshotScheduleStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Valid (cron expression and time zone understood), Progressing; with
	// spec.objectives, RPOMet and RTOMet.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastScheduleTime is when a run last started.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// LastSuccessfulTime is when a run last ended Ready.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`
	// NextScheduleTime is when the next run is due.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// LastResult is the phase of the last finished run.
	// +optional
	LastResult string `json:"lastResult,omitempty"`
	// Protection against spec.objectives, when set.
	// +optional
	Protection *Protection `json:"protection,omitempty"`
	// BackupRetentionSpan is the longest time this schedule's backup retention (GFS) keeps a
	// Backup, at the schedule's run interval; empty when the policy keeps everything. A
	// BackupLocation with Object Lock retains new objects at least this long.
	// +optional
	BackupRetentionSpan *metav1.Duration `json:"backupRetentionSpan,omitempty"`
	// History of the most recent runs, newest first.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	History []ScheduleRun `json:"history,omitempty"`
}

// SnapshotSchedule takes Snapshots on a cron schedule and keeps a chosen number of them.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ssched,categories=stork
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Last",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.lastResult`
// +kubebuilder:printcolumn:name="RPO Met",type=string,JSONPath=`.status.conditions[?(@.type=="RPOMet")].status`
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextScheduleTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 52",message="metadata.name must be at most 52 characters: it prefixes the names of the Snapshots the schedule makes and is a label value"
type SnapshotSchedule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SnapshotScheduleSpec   `json:"spec"`
	Status SnapshotScheduleStatus `json:"status,omitempty"`
}

// SnapshotScheduleList is a list of SnapshotSchedules.
// +kubebuilder:object:root=true
type SnapshotScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SnapshotSchedule `json:"items"`
}
