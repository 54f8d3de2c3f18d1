package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/harness"
)

// TestRestoreReadsInParallelFromS3 restores from MinIO behind a proxy that adds 10 ms to every
// request, as a cloud store's round trip does, and counts the pack reads in flight: a restore
// from a cloud store keeps more of them going than from a directory (4), or it waits out one
// round trip after another.
func TestRestoreReadsInParallelFromS3(t *testing.T) {
	t.Parallel()
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := env.StartMinIO(ctx, "minio-inflight")
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var inFlight, most atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/data/") {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for old := most.Load(); n > old && !most.CompareAndSwap(old, n); old = most.Load() {
			}
		}
		time.Sleep(10 * time.Millisecond)
		proxy.ServeHTTP(w, r)
	}))
	defer slow.Close()

	store, err := objstore.Open(ctx, objstore.Config{
		URL:         "s3://" + m.Bucket + "/inflight",
		S3:          objstore.S3Options{Endpoint: slow.URL, ForcePathStyle: true},
		Credentials: objstore.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key := repo.UserKey{Passphrase: "in flight test"}
	r, err := repo.Init(ctx, store, key, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// One 96 MiB file: about 96 chunks in one batch, cut into 16 parts of 6 MiB.
	src := t.TempDir()
	data := make([]byte, 96<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	id, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	most.Store(0)
	dst := t.TempDir()
	if err := archive.Restore(ctx, r, id, dst, archive.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "big")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the restored file differs (%v)", err)
	}
	if n := most.Load(); n <= 4 {
		t.Errorf("at most %d pack reads were in flight from S3; want more than a directory's 4", n)
	}
}
