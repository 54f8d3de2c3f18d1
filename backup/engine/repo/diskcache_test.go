package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Manifests kept on disk are used instead of the store's, checked first; a damaged one is read
// from the store again; forgotten ones and temporary files are removed; the prefetch at open
// skips what the disk holds.
func TestManifestDiskCache(t *testing.T) {
	ctx := context.Background()
	s := memStore(t)
	dir := t.TempDir()
	r0, err := Init(ctx, s, pass, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r0.Close()
	r, err := OpenWith(ctx, s, pass, OpenOptions{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ids []ID
	for i := range 3 {
		id, err := r.SaveSnapshot(ctx, &Snapshot{Time: time.Unix(int64(i), 0), Paths: []string{string(rune('a' + i))}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	key := func(i int) string { return "snapshots/" + ids[i].String() }
	file := func(i int) string { return filepath.Join(dir, "snapshots", ids[i].String()) }
	for i := range ids {
		if _, err := os.Stat(file(i)); err != nil {
			t.Fatalf("saved manifest %d not cached: %v", i, err)
		}
	}
	// The store's copy of the first becomes garbage: only a read from the cache still opens it.
	replace := func(key string, data []byte) {
		t.Helper()
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutNew(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	good, err := s.Get(ctx, key(0))
	if err != nil {
		t.Fatal(err)
	}
	replace(key(0), []byte("not a manifest"))
	_ = os.WriteFile(filepath.Join(dir, "snapshots", ".tmp-123"), []byte("left by a killed process"), 0o600)

	// A fresh open: the prefetch skips the cached keys, Snapshots reads the disk.
	pre := startPrefetch(ctx, s, "snapshots/", manifestsPrefetchMax, diskCache{dir}.has)
	pre.wait()
	if len(pre.files) != 0 {
		t.Errorf("the prefetch fetched %d manifests the disk cache holds", len(pre.files))
	}
	r2, err := OpenWith(ctx, s, pass, OpenOptions{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	all, err := r2.Snapshots(ctx)
	if err != nil || len(all) != 3 || all[0].Paths[0] != "a" {
		t.Fatalf("snapshots through the disk cache: %+v, %v; want 3, the first from the cache", all, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", ".tmp-123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a temporary file survived the listing: %v", err)
	}
	// Without the cache, the garbage is what the store gives.
	r3, err := Open(ctx, s, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	var d *DamagedError
	if _, err := r3.Snapshots(ctx); !errors.As(err, &d) {
		t.Fatalf("snapshots with no cache over a garbage manifest: %v; want it reported damaged", err)
	}

	// A damaged cache entry is read from the store again, and rewritten.
	replace(key(0), good)
	if err := os.WriteFile(file(0), []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	r4, err := OpenWith(ctx, s, pass, OpenOptions{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r4.Close()
	if got, err := r4.CachedSnapshot(ctx, ids[0]); err != nil || got.Paths[0] != "a" {
		t.Fatalf("snapshot over a damaged cache entry: %+v, %v", got, err)
	}
	if b, _ := os.ReadFile(file(0)); string(b) != string(good) {
		t.Error("the damaged cache entry was not rewritten from the store")
	}

	// A forgotten snapshot leaves the cache at the next listing.
	if err := r4.Forget(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if all, err := r4.Snapshots(ctx); err != nil || len(all) != 2 {
		t.Fatalf("after forget: %d snapshots, %v", len(all), err)
	}
	if _, err := os.Stat(file(1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the forgotten manifest is still cached: %v", err)
	}
}
