// Package restore brings data back: the Restore controller, which turns a Snapshot or a Backup
// into new PersistentVolumeClaims and recreated Kubernetes objects in this or another cluster,
// mapping namespaces, claim names, storage classes and zones, with a policy for objects that
// already exist.
//
// It uses drivers/, the backup engine (to read repositories) and backup/locator; nothing of
// Stork's imports it but the commands (placement's failover makes Restore objects, it does not
// call this package).
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package restore
