// Package fscopy is the copy engine of the local-volume driver's node agent: it copies a volume
// directory into a new directory on the same node, for point-in-time copies ("snapshots") and
// for restoring them into new volumes. It preserves everything a volume's tree can hold —
// directories, regular files, symlinks (never followed), hard links, FIFOs, modes including
// setuid/setgid/sticky, owners, nanosecond times and extended attributes — and reports progress,
// stops on cancellation and can limit its bandwidth.
//
// How content is copied matters more than anything else here. On filesystems that share
// extents (XFS with reflink, btrfs) a file is cloned with FICLONE: the copy is instant and
// takes no space until either side is written, so snapshots of large volumes are cheap.
// Elsewhere only the file's data segments are copied (SEEK_DATA/SEEK_HOLE), in-kernel with
// copy_file_range: volumes hold VM images and database files with large holes, and copying the
// zeros would both waste time and make the copy use far more disk than the original — a restore
// could then fail to fit a volume the original fitted.
//
// The package does not make a copy crash-safe: callers copy into a fresh directory and rename
// it into place. Only Linux is supported; it imports nothing of Stork's.
//
// Layer: drivers. May import: lib, api, engine, drivers.
package fscopy
