package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/harness"
)

// TestEngineOnObjectLockBucket runs the whole repository life cycle — init, backups, restore,
// forget, prune, check — in a MinIO bucket with Object Lock and a default governance retention,
// where no object version can be overwritten or removed: nothing Stork does needs either.
func TestEngineOnObjectLockBucket(t *testing.T) {
	t.Parallel()
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := env.StartMinIO(ctx, "minio-lock")
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "locked"
	if err := m.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	mode, validity, unit := minio.Governance, uint(1), minio.Days
	if err := m.Client.SetObjectLockConfig(ctx, bucket, &mode, &validity, &unit); err != nil {
		t.Fatal(err)
	}
	store, err := objstore.Open(ctx, objstore.Config{
		URL:         "s3://" + bucket + "/repo",
		S3:          objstore.S3Options{Endpoint: m.Endpoint, ForcePathStyle: true},
		Credentials: objstore.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := repo.Init(ctx, store, repo.UserKey{Passphrase: "object lock test"}, repo.InitOptions{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := t.TempDir()
	big := make([]byte, 3<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small"), []byte("stays"), 0o644)
	first, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{})
	if err != nil {
		t.Fatalf("backup into an Object Lock bucket: %v", err)
	}
	os.Remove(filepath.Join(src, "big"))
	second, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{Parent: &first})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, first); err != nil {
		t.Fatalf("forget in an Object Lock bucket: %v", err)
	}
	opts := repo.DefaultPruneOptions()
	opts.Grace, opts.ClockSkew = 0, 0
	pr, err := r.Prune(ctx, archive.Referenced, opts)
	if err != nil {
		t.Fatalf("prune in an Object Lock bucket: %v", err)
	}
	if pr.PacksDeleted == 0 {
		t.Errorf("prune deleted nothing: %+v", pr)
	}
	// The deleted packs are hidden behind delete markers, their versions retained.
	versions := 0
	for o := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "repo/data/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.IsDeleteMarker {
			versions++
		}
	}
	if versions < pr.PacksDeleted {
		t.Errorf("%d delete markers for %d deleted packs", versions, pr.PacksDeleted)
	}
	if rep, err := archive.Check(ctx, r, repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check: %+v, %v", rep, err)
	}
	dst := t.TempDir()
	if err := archive.Restore(ctx, r, second, dst, archive.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "small")); !bytes.Equal(got, []byte("stays")) {
		t.Errorf("restored %q", got)
	}
}
