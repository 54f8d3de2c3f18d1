// Package v1alpha1 holds the Go types of Stork's Kubernetes API, group stork.dev, version
// v1alpha1: BackupLocation, Snapshot, Backup, SnapshotSchedule, Restore, StorageNode and
// VolumeTask. The kubebuilder markers on these types are the source of the CRD schemas and
// their validation rules in deploy/base/crds (run `make generate` after changing them); the
// deepcopy functions in zz_generated.deepcopy.go are generated too.
//
// This package imports only k8s.io/api and k8s.io/apimachinery (its scheme builder is
// apimachinery's, not controller-runtime's): everything else in Stork imports it, the engine
// included, so it must not pull a controller library in.
//
// +kubebuilder:object:generate=true
// +groupName=stork.dev
//
// Layer: api. May import: lib, api. No controller-runtime or client-go.
package v1alpha1
