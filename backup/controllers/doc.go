// Package controllers holds the reconcilers of backups: the Snapshot controller (group
// snapshots of an application's claims through the storage drivers, with pre/post hooks), the
// Backup controller (a Snapshot's copy in a BackupLocation, with the application's Kubernetes
// objects, collected by Collect) and the sync controller (Backups found in a location's
// repository become Backup objects, for restores in another cluster). The BackupLocation
// controller is in locations/. They drive the engine (backup/engine) through the repository
// interface of backup.go and reach locations through backup/locator.
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package controllers
