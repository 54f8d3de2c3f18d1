// Package mover is the data mover that runs in pods for drivers without node agents (the csi
// driver): `stork-agent mover backup` backs a volume mounted into the pod up into a backup
// location, `stork-agent mover restore` restores a backup into a fresh volume mounted there. The
// work item is a VolumeTask the driver made; the mover reads it, reaches the location with the
// access Secret mounted as files (never environment variables or arguments), and writes its
// progress and result to the task's status.
//
// Layer: drivers. May import: lib, api, engine, drivers.
package mover
