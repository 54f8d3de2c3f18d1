package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupLocationAccessMode says whether Stork may write to a location.
// +kubebuilder:validation:Enum=ReadWrite;ReadOnly
type BackupLocationAccessMode string

const (
	// AccessReadWrite lets Stork write backups to, and prune, the location.
	AccessReadWrite BackupLocationAccessMode = "ReadWrite"
	// AccessReadOnly only lets Stork list and restore backups, e.g. another
	// cluster's bucket during disaster recovery.
	AccessReadOnly BackupLocationAccessMode = "ReadOnly"
)

// BackupLocationPhase summarises the Available condition.
// +kubebuilder:validation:Enum=Pending;Available;Unavailable
type BackupLocationPhase string

const (
	BackupLocationPending     BackupLocationPhase = "Pending"
	BackupLocationAvailable   BackupLocationPhase = "Available"
	BackupLocationUnavailable BackupLocationPhase = "Unavailable"
)

// S3Options are the settings of an s3:// location beyond its bucket.
type S3Options struct {
	// Endpoint is the S3 API's base URL, for S3-compatible stores such as MinIO
	// (e.g. https://minio.example:9000). Empty means AWS.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://[^\s/]+(/.*)?$`
	Endpoint string `json:"endpoint,omitempty"`
	// Region of the bucket. Required by AWS; MinIO accepts any value.
	// +optional
	Region string `json:"region,omitempty"`
	// ForcePathStyle addresses the bucket as ENDPOINT/BUCKET rather than BUCKET.ENDPOINT,
	// as most S3-compatible stores need.
	// +optional
	ForcePathStyle bool `json:"forcePathStyle,omitempty"`
	// ObjectLockRetention, for a bucket with S3 Object Lock, is the least time every object
	// Stork writes is retained (retain-until = write time + this; mode GOVERNANCE unless the
	// bucket's default says COMPLIANCE): no one, with any credentials, can delete a backup's data
	// before. Stork retains objects longer when the bucket's default retention is longer, or
	// when a schedule writing here keeps backups longer (its status.backupRetentionSpan), and
	// each prune extends the retention of what backups still use. Ignored without Object Lock.
	// +optional
	ObjectLockRetention *metav1.Duration `json:"objectLockRetention,omitempty"`
}

// BackupLocationSpec says where backups are kept and how to reach them.
// +kubebuilder:validation:XValidation:rule="!has(self.s3) || self.url.startsWith('s3://')",message="s3 options are only valid with an s3:// url"
type BackupLocationSpec struct {
	// URL of the object store and the prefix in it: s3://BUCKET[/PREFIX],
	// gs://BUCKET[/PREFIX], azblob://CONTAINER[/PREFIX] or file:///ABSOLUTE/DIR.
	// It cannot change: backups already made there would be lost from view.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$') || self.matches('^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$') || self.matches('^azblob://[a-z0-9][a-z0-9-]{1,61}[a-z0-9](/.*)?$') || self.matches('^file:///.+')",message="url must be s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], azblob://CONTAINER[/PREFIX] or file:///ABSOLUTE/DIR, with the bucket's name as its store accepts it (objstore.Open names the rule)"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="url is immutable: create a new BackupLocation for another bucket"
	URL string `json:"url"`

	// S3 holds the options of an s3:// URL.
	// +optional
	S3 *S3Options `json:"s3,omitempty"`

	// CredentialsSecretRef names a Secret with the store's credentials. Keys by store:
	// s3: accessKeyID, secretAccessKey (and optionally sessionToken);
	// gs: serviceAccount.json; azblob: accountName, accountKey. Not used by file://.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// EncryptionKeySecretRef names the Secret key that holds the repository's
	// passphrase. Every backup is encrypted; there is no default key.
	EncryptionKeySecretRef SecretKeyReference `json:"encryptionKeySecretRef"`

	// Default marks the location used by Snapshots and schedules that name none.
	// +optional
	Default bool `json:"default,omitempty"`

	// AccessMode is ReadWrite (default) or ReadOnly.
	// +optional
	// +kubebuilder:default=ReadWrite
	AccessMode BackupLocationAccessMode `json:"accessMode,omitempty"`

	// SyncPeriod is how often the location is checked and its backups listed into
	// Backup objects. At least 10s.
	// +optional
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="syncPeriod must be at least 10s"
	SyncPeriod *metav1.Duration `json:"syncPeriod,omitempty"`

	// Maintenance says how often the repository is pruned: data no Backup references any
	// more (deleted Backups, interrupted uploads) is marked, and deleted once it has been
	// marked for the grace period. ReadOnly locations are never pruned.
	// +optional
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	// StrictChangeDetection makes every backup into this location read every file of its
	// volumes. By default a file whose path, size, modification time (to the nanosecond), mode
	// and owner match its entry in the claim's previous backup is taken from that backup
	// without being read, although it is a new copy (docs/design.md, "Change detection"); set
	// this when your applications may rewrite a file in place, keep its size and set its
	// modification time back. Data already in the repository is still stored once.
	// +optional
	StrictChangeDetection bool `json:"strictChangeDetection,omitempty"`
	// Compression is the codec of the repository's data, chosen when Stork initialises the
	// repository in an empty bucket prefix: zstd (the default: a smaller repository) or s2
	// (faster backups and restores, a larger repository; docs/performance.md). A repository that
	// exists keeps its own.
	// +optional
	// +kubebuilder:validation:Enum=zstd;s2
	Compression string `json:"compression,omitempty"`
}

// Maintenance tunes a location's pruning.
type Maintenance struct {
	// Interval between prunes. Default 24h; at least 10s.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="maintenance.interval must be at least 10s"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Grace is how long unreferenced data stays marked before it is deleted, so that
	// backups running while a prune marks can still use it. Default 1h; 0 deletes at the
	// first prune when no backup that began earlier is running.
	// +optional
	Grace *metav1.Duration `json:"grace,omitempty"`
}

// BackupLocationStatus is what Stork last saw of the location.
type BackupLocationStatus struct {
	// Phase summarises the Available condition.
	// +optional
	Phase BackupLocationPhase `json:"phase,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Available; Readable (True while the store refuses writes but the repository
	// reads: restores and sync go on, backups wait).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// RepositoryID identifies the backup repository found at the URL.
	// +optional
	RepositoryID string `json:"repositoryID,omitempty"`
	// LastValidationTime is when access was last checked.
	// +optional
	LastValidationTime *metav1.Time `json:"lastValidationTime,omitempty"`
	// LastSyncTime is when the location's backups were last listed.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// Backups is how many complete backups the location held at the last sync.
	// +optional
	Backups int32 `json:"backups,omitempty"`
	// LastPruneTime is when the repository was last pruned.
	// +optional
	LastPruneTime *metav1.Time `json:"lastPruneTime,omitempty"`
	// LastPruneResult says what the last prune did, or why it failed.
	// +optional
	LastPruneResult string `json:"lastPruneResult,omitempty"`
	// ObjectLockRetention is the retention new objects get on a bucket with Object Lock:
	// spec.s3.objectLockRetention, or the longest backupRetentionSpan of the schedules that
	// back up here, whichever is longer (the bucket's default applies when it is longer still).
	// +optional
	ObjectLockRetention *metav1.Duration `json:"objectLockRetention,omitempty"`
}

// BackupLocation is an object store where Stork keeps backups.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bl,categories=stork
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Access",type=string,JSONPath=`.spec.accessMode`
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupLocation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BackupLocationSpec   `json:"spec"`
	Status BackupLocationStatus `json:"status,omitempty"`
}

// BackupLocationList is a list of BackupLocations.
// +kubebuilder:object:root=true
type BackupLocationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupLocation `json:"items"`
}
