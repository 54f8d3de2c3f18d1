// Package local is the driver for node-local volumes: PersistentVolumes with spec.local or
// spec.hostPath under a configured root (including those made by local-path-provisioner), whose
// data lives on the one node their node affinity names.
//
// The controller side lives here: ownership, locality, storage nodes (from the StorageNode
// objects the agents keep), and snapshots, deletions and restores handed to the agent of the
// volume's node as VolumeTasks. The node side (the agent's work and health reports) is in
// drivers/local/agent; the copy engine is drivers/local/fscopy.
//
// Layer: drivers. May import: lib, api, engine, drivers.
package local
