// Package catalog is how a Stork Backup is laid out in a backup repository, so that any cluster
// that can read the location can find, list and restore it without the cluster that made it.
//
// A Backup is several repository snapshots tied together by tags:
//
//   - one per volume (tag kind=volume), uploaded by the agent that holds the data;
//   - one with the application's Kubernetes objects (kind=resources), when asked for;
//   - the record (kind=backup): one file, backup.json, that lists the others with what a
//     restore needs (claims, sizes, storage classes, zones, access modes).
//
// Every part carries the tags backup-uid (the Backup object's UID in the cluster that made it),
// backup, namespace and cluster. The record is written last, once every volume is final: a
// backup without a record is incomplete (still running, or killed) and is never listed as a
// backup. Deleting a backup forgets its record first, for the same reason.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package catalog
