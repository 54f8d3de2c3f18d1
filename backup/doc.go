// Package backup takes data out of volumes: the Snapshot controller (group snapshots of an
// application's claims through the storage drivers, with pre/post hooks), the Backup controller
// (a Snapshot's copy in a BackupLocation, with the application's Kubernetes objects), and the
// backup engine that stores directory trees in object stores, deduplicated, compressed and
// encrypted (subpackages).
//
// It may import api/, drivers/ and Kubernetes libraries. restore/ imports its engine to read
// backups back; placement/ and schedules/ must not need it.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package backup
