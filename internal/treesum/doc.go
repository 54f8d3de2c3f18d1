// Package treesum hashes a directory tree's regular files (path, size and content), so that
// a volume's data can be compared across a backup and a restore wherever it is read: by the
// demo on the host, and by the test application inside a pod.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package treesum
