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

// s3Server is what the engine tests need of a real S3 server: where it is, root credentials,
// an empty bucket, and a client of its own to damage objects with.
type s3Server struct {
	endpoint, accessKey, secretKey, bucket string
	client                                 *minio.Client
}

// TestEngineOverS3 backs up, restores, prunes and checks through real S3 servers: MinIO, and
// versitygw, which holds requests to AWS's rules where MinIO is lenient. Then it damages one pack
// in the bucket and checks that check and restore name it.
func TestEngineOverS3(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(ctx context.Context, t *testing.T, env *harness.Env) (s3Server, error)
	}{
		{"minio", func(ctx context.Context, _ *testing.T, env *harness.Env) (s3Server, error) {
			m, err := env.StartMinIO(ctx, "minio-engine")
			if err != nil {
				return s3Server{}, err
			}
			return s3Server{m.Endpoint, m.AccessKey, m.SecretKey, m.Bucket, m.Client}, nil
		}},
		{"versitygw", func(ctx context.Context, t *testing.T, env *harness.Env) (s3Server, error) {
			g, err := env.StartVersityGW(ctx, t, "versitygw-engine")
			if err != nil {
				return s3Server{}, err
			}
			return s3Server{g.Endpoint, g.AccessKey, g.SecretKey, g.Bucket, g.Client}, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := harness.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			srv, err := tc.start(ctx, t, env)
			if err != nil {
				t.Fatal(err)
			}
			testEngineOverS3(ctx, t, srv)
		})
	}
}

func testEngineOverS3(ctx context.Context, t *testing.T, m s3Server) {
	cfg := objstore.Config{
		URL: "s3://" + m.bucket + "/engine-test",
		S3:  objstore.S3Options{Endpoint: m.endpoint, ForcePathStyle: true},
	}
	if _, err := objstore.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "credentials are incomplete") {
		t.Fatalf("opening s3 without credentials: %v", err)
	}
	cfg.Credentials = objstore.Credentials{AccessKeyID: m.accessKey, SecretAccessKey: m.secretKey}
	store, err := objstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	// Writes are conditional (If-None-Match: *): a second write of a key changes nothing and
	// says so, which is what makes two inits of one repository, or two lock holders, safe.
	for i, data := range []string{"first", "second"} {
		ok, err := store.PutNew(ctx, "conditional", []byte(data))
		if err != nil || ok != (i == 0) {
			t.Fatalf("write %d of one key: ok=%v, %v; want ok=%v", i+1, ok, err, i == 0)
		}
	}
	if got, err := store.Get(ctx, "conditional"); err != nil || string(got) != "first" {
		t.Fatalf("after a second conditional write: %q, %v; want the first write's data", got, err)
	}

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
	for o := range m.client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: "engine-test/data/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.Size > victim.Size {
			victim = o
		}
	}
	obj, err := m.client.GetObject(ctx, m.bucket, victim.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if _, err := m.client.PutObject(ctx, m.bucket, victim.Key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
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
