// Command demo is `make demo`: it starts a local Kubernetes control plane with simulated nodes in
// three zones, installs Stork's CRDs, creates a sample file:// BackupLocation, schedules a pod,
// and prints how to use the cluster. It keeps the cluster up until interrupted (or for --wait),
// then stops everything it started.
package main
