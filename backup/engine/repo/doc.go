// Package repo is Stork's backup repository format (docs/repository-format.md): content-addressed
// blobs (keyed BLAKE3 IDs), compressed with zstd unless incompressible, sealed with AES-256-GCM
// under a master key that is itself wrapped by the user's passphrase or raw key, gathered into
// write-once pack files of tens of MiB; index files that map blobs to packs; and snapshot
// manifests, written last, that make a backup visible.
//
// It builds on backup/engine/objstore; backup/engine/archive builds trees on top of it.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package repo
