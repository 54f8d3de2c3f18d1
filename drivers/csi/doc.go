// Package csi is Stork's catch-all driver for volumes of any CSI driver that no more specific
// Stork driver owns (EBS, GCE PD, Azure Disk, Ceph RBD, …). It works only through the standard
// Kubernetes storage APIs:
//
//   - placement: a volume's topology from its PersistentVolume's node affinity, and storage health
//     from each node's conditions and its CSINode registrations (driver.go, topology.go);
//   - snapshots: VolumeSnapshots of the external-snapshotter API, or one VolumeGroupSnapshot
//     where the CSI driver has a VolumeGroupSnapshotClass (snapshot.go, group.go);
//   - local restores: new claims provisioned from a VolumeSnapshot, in another namespace through a
//     pre-provisioned VolumeSnapshotContent bound there (restore.go);
//   - cloud backups and restores: a data mover pod (`stork-agent mover`) in Stork's namespace
//     that mounts a temporary claim made from the snapshot (backup) or for the new volume
//     (restore) and runs the backup engine, reporting on a VolumeTask (mover.go, pod.go, slots.go);
//     temporaries are deleted when the work ends, and a sweeper deletes those whose work is gone
//     (sweep.go).
//
// Layer: drivers. May import: lib, api, engine, drivers.
package csi
