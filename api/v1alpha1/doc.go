// Package v1alpha1 holds the Go types of Stork's Kubernetes API, group stork.dev, version
// v1alpha1: BackupLocation, Snapshot, Backup, SnapshotSchedule, Restore, StorageNode and
// VolumeTask. The kubebuilder markers on these types are the source of the CRD schemas and
// their validation rules in deploy/crds (run `make generate` after changing them); the
// deepcopy functions in zz_generated.deepcopy.go are generated too.
//
// This package may import only k8s.io/api, k8s.io/apimachinery and controller-runtime's scheme
// helpers: everything else in Stork imports it, so it must not import anything of Stork's.
//
// +kubebuilder:object:generate=true
// +groupName=stork.dev
//
// Layer: api. May import: lib, api. No controller-runtime or client-go.
package v1alpha1
