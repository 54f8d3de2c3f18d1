package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIndexPrefetch checks that LoadIndex takes the index files fetched while the key was
// derived, holds them to the same checks as files it reads itself, and reads only what a fresh
// listing names.
func TestIndexPrefetch(t *testing.T) {
	ctx := context.Background()
	s, r := newTestRepo(t)
	for range 3 { // three writing sessions: three index files of one blob each
		w := r.NewWriter(ctx, 1)
		if _, err := w.Add(DataBlob, randomBytes(1000)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	blobOf := map[string]ID{}
	if err := r.indexFiles(ctx, func(key string, packs []IndexedPack, err error) error {
		keys = append(keys, key)
		blobOf[key] = packs[0].Entries[0].ID
		return err
	}); err != nil || len(keys) != 3 {
		t.Fatalf("index files %v, %v: want 3", keys, err)
	}

	pre := startPrefetch(ctx, s, "index/", indexPrefetchMax, nil)
	pre.wait()
	if len(pre.files) != 3 {
		t.Fatalf("prefetched %d index files, want 3", len(pre.files))
	}
	// keys[0] now holds the bytes of keys[1]: a valid index file under the wrong name, which
	// only the prefetched copy has. keys[2] goes, as a prune replaces index files, after the
	// prefetch and before the listing.
	pre.files[keys[0]] = pre.files[keys[1]]
	gone := keys[2]
	if err := s.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	r2, err := open(ctx, s, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r2.prefetched = pre
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	damage := r2.IndexDamage()
	var d *DamagedError
	if len(damage) != 1 || !errors.As(damage[0], &d) || d.Object != keys[0] || !strings.Contains(d.Detail, "hashes to") {
		t.Errorf("index damage %v: want %s named as not matching its content", damage, keys[0])
	}
	if r2.loadedFiles[gone] {
		t.Errorf("%s was loaded from the prefetch though the listing no longer has it", gone)
	}
	if r2.Has(blobOf[keys[0]]) || !r2.Has(blobOf[keys[1]]) || r2.Has(blobOf[gone]) {
		t.Errorf("has the blob of the damaged file %v (want false), of the sound one %v (want true), of the deleted one %v (want false)",
			r2.Has(blobOf[keys[0]]), r2.Has(blobOf[keys[1]]), r2.Has(blobOf[gone]))
	}
	if len(pre.files) != 1 || pre.files[gone] == nil {
		t.Errorf("prefetched files left: %d, want only the deleted one", len(pre.files))
	}
}

// TestSnapshotPrefetch checks that OpenWith keeps the snapshot manifests fetched while the key
// was derived, and only those that check out against their names.
func TestSnapshotPrefetch(t *testing.T) {
	ctx := context.Background()
	s, r := newTestRepo(t)
	var ids []ID
	for i := range 3 {
		id, err := r.SaveSnapshot(ctx, &Snapshot{Time: time.Unix(int64(i), 0), Paths: []string{fmt.Sprint("/", i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	pre := startPrefetch(ctx, s, "snapshots/", manifestsPrefetchMax, nil)
	pre.wait()
	if len(pre.files) != 3 {
		t.Fatalf("prefetched %d manifests, want 3", len(pre.files))
	}
	key := func(i int) string { return "snapshots/" + ids[i].String() }
	// The prefetched copy of the second is the third's bytes: not adopted, read from the store.
	pre.files[key(1)] = pre.files[key(2)]
	r2, err := open(ctx, s, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r2.adoptSnapshots(pre)
	// The first is now garbage in the store: only its adopted copy makes Snapshots succeed.
	if err := s.Delete(ctx, key(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutNew(ctx, key(0), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	got, err := r2.Snapshots(ctx)
	if err != nil {
		t.Fatalf("snapshots: %v (the first manifest was not taken from the prefetch?)", err)
	}
	if len(got) != 3 {
		t.Fatalf("%d snapshots, want 3", len(got))
	}
	for i, sn := range got {
		if sn.ID != ids[i] || sn.Paths[0] != fmt.Sprint("/", i) {
			t.Errorf("snapshot %d: %s %v, want %s /%d", i, sn.ID, sn.Paths, ids[i], i)
		}
	}
}
