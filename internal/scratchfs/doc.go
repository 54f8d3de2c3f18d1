// Package scratchfs mounts throwaway file systems for tests: XFS or btrfs (with reflinks) made
// in an image file and loop-mounted, for code whose behaviour depends on the file system
// (reflink snapshots, FIEMAP). It needs root and the mkfs tools; hack/node-deps.sh, which
// make test runs, installs xfsprogs and btrfs-progs.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package scratchfs
