package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/harness"
)

// TestEngineWithMinIO backs up and restores through a real MinIO over the S3 API, then damages
// one pack in the bucket and checks that the restore names it.
func TestEngineWithMinIO(t *testing.T) {
	t.Parallel()
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := env.StartMinIO(ctx, "minio-engine")
	if err != nil {
		t.Fatal(err)
	}
	cfg := objstore.Config{
		URL: "s3://" + m.Bucket + "/engine-test",
		S3:  objstore.S3Options{Endpoint: m.Endpoint, ForcePathStyle: true},
	}
	if _, err := objstore.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "credentials are incomplete") {
		t.Fatalf("opening s3 without credentials: %v", err)
	}
	cfg.Credentials = objstore.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}
	store, err := objstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key := repo.UserKey{Passphrase: "minio engine test"}
	r, err := repo.Init(ctx, store, key, repo.InitOptions{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	src := t.TempDir()
	files := map[string][]byte{}
	for i, size := range []int{0, 1, 4096, 3 << 20, 5 << 20} {
		data := make([]byte, size)
		rand.Read(data)
		name := filepath.Join(src, "vol", string(rune('a'+i)))
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	id, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{Tags: map[string]string{"cluster": "east"}})
	if err != nil {
		t.Fatal(err)
	}
	first := id

	// Another process (a second cluster) opens the same bucket and restores.
	r2, err := repo.Open(ctx, store, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	dst := t.TempDir()
	if err := archive.Restore(ctx, r2, id, dst, archive.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		rel, _ := filepath.Rel(src, name)
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s differs after a round trip through MinIO (%v)", rel, err)
		}
	}

	// A second backup without the largest file; forgetting the first and pruning deletes the
	// packs only it used, in MinIO, and what is left checks clean, every byte read back.
	largest := filepath.Join(src, "vol", "e")
	os.Remove(largest)
	delete(files, largest)
	id, _, err = archive.Backup(ctx, r, src, archive.BackupOptions{Parent: &id})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, first); err != nil {
		t.Fatal(err)
	}
	prune := repo.DefaultPruneOptions()
	prune.Grace, prune.ClockSkew = 0, 0
	pr, err := r.Prune(ctx, archive.Referenced, prune)
	if err != nil {
		t.Fatal(err)
	}
	if pr.PacksDeleted == 0 || pr.BytesDeleted < 5<<20 {
		t.Errorf("prune after forgetting 5 MiB of data: %+v", pr)
	}
	if rep, err := archive.Check(ctx, r2, repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check after prune: %+v, %v", rep, err)
	}

	// Flip one byte in the middle of the largest pack, as bit rot or tampering would.
	var victim minio.ObjectInfo
	for o := range m.Client.ListObjects(ctx, m.Bucket, minio.ListObjectsOptions{Prefix: "engine-test/data/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.Size > victim.Size {
			victim = o
		}
	}
	obj, err := m.Client.GetObject(ctx, m.Bucket, victim.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if _, err := m.Client.PutObject(ctx, m.Bucket, victim.Key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := archive.Check(ctx, r2, repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Error(), victim.Key[len("engine-test/"):]) {
		t.Fatalf("check --read-data of a damaged pack: %v; want a problem naming %s", rep.Problems, victim.Key)
	}
	err = archive.Restore(ctx, r2, id, t.TempDir(), archive.RestoreOptions{})
	var damaged *repo.DamagedError
	if !errors.As(err, &damaged) || !strings.HasSuffix(victim.Key, damaged.Object) {
		t.Fatalf("restore from a damaged pack: %v; want a DamagedError naming %s", err, victim.Key)
	}
}
