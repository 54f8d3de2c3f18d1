// Package objstore opens object stores — s3:// (AWS, MinIO and other S3-compatible stores, through
// aws-sdk-go-v2), gs://, azblob://, file:// and mem:// — through gocloud.dev/blob, with credentials
// passed in explicitly and retries with backoff, and offers the operations a backup repository
// needs: write-once puts, whole and ranged reads, listing and deletes.
//
// It uses only the blob libraries (and, for S3, the SDK's client directly for writes, which
// gocloud's writer would buffer in memory, and Object Lock); backup/engine/repo builds the
// repository format on top of it.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package objstore
