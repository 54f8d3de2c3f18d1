package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/retention"
)

func memStore(t *testing.T) *objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), objstore.Config{URL: "mem://"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

var pass = UserKey{Passphrase: "correct horse battery staple"}

func newTestRepo(t *testing.T) (*objstore.Store, *Repository) {
	t.Helper()
	s := memStore(t)
	r, err := Init(context.Background(), s, pass, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return s, r
}

func TestInitOpenKeys(t *testing.T) {
	ctx := context.Background()
	raw := randomBytes(32)
	cases := []struct {
		name    string
		init    UserKey
		open    UserKey
		wantErr string
	}{
		{"passphrase", pass, pass, ""},
		{"raw key", UserKey{Raw: raw}, UserKey{Raw: raw}, ""},
		{"wrong passphrase", pass, UserKey{Passphrase: "incorrect horse"}, "wrong key"},
		{"raw for passphrase repo", pass, UserKey{Raw: raw}, "wrong key"},
		{"short passphrase", UserKey{Passphrase: "short"}, pass, "at least 8 characters"},
		{"no key", UserKey{}, pass, "at least 8 characters"},
		{"short raw", UserKey{Raw: raw[:16]}, pass, "32 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := memStore(t)
			r, err := Init(ctx, s, tc.init, InitOptions{})
			if err == nil {
				r.Close()
				r, err = Open(ctx, s, tc.open)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestInitTwiceAndOpenEmpty(t *testing.T) {
	ctx := context.Background()
	s := memStore(t)
	if _, err := Open(ctx, s, pass); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("open of an empty store: %v", err)
	}
	r, err := Init(ctx, s, pass, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := Init(ctx, s, pass, InitOptions{}); err == nil || !strings.Contains(err.Error(), "already holds a repository") {
		t.Fatalf("second init: %v", err)
	}
}

// TestWriterDedupAndLoad writes, dedups and reads blobs back with each codec.
func TestWriterDedupAndLoad(t *testing.T) {
	for _, compression := range []string{CompressionZstd, CompressionS2} {
		t.Run(compression, func(t *testing.T) { writerDedupAndLoad(t, compression) })
	}
}

func TestInitCompression(t *testing.T) {
	ctx := context.Background()
	if _, err := Init(ctx, memStore(t), pass, InitOptions{Compression: "lz4"}); err == nil || !strings.Contains(err.Error(), `compression "lz4"`) {
		t.Fatalf("init with an unknown codec: %v", err)
	}
	s := memStore(t)
	r, err := Init(ctx, s, pass, InitOptions{Compression: CompressionS2})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if r, err = Open(ctx, s, pass); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Format 2, so that a reader of format 1 only refuses it by its version.
	if c := r.Config(); c.Version != FormatS2 || c.Compression != CompressionS2 {
		t.Fatalf("config of an s2 repository: version %d, compression %q", c.Version, c.Compression)
	}
}

func writerDedupAndLoad(t *testing.T, compression string) {
	ctx := context.Background()
	s := memStore(t)
	r, err := Init(ctx, s, pass, InitOptions{PackSize: 1 << 20, Compression: compression})
	if err != nil {
		t.Fatal(err)
	}
	w := r.NewWriter(ctx, 2)
	var ids []ID
	var blobs [][]byte
	for i := range 40 {
		data := randomBytes(100 << 10)
		if i%2 == 0 {
			data = bytes.Repeat([]byte("compressible "), 8000)
			data[0] = byte(i)
		}
		id, err := w.Add(DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Add(DataBlob, data); err != nil { // a duplicate in the same session
			t.Fatal(err)
		}
		ids, blobs = append(ids, id), append(blobs, data)
	}
	st, err := w.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if st.BlobsAdded != 40 || st.BlobsReused != 40 || st.PacksWritten < 2 {
		t.Errorf("stats %+v: want 40 added, 40 reused, several packs", st)
	}
	if st.BytesStored >= st.BytesAdded {
		t.Errorf("stored %d bytes for %d: compression did not help half-compressible data", st.BytesStored, st.BytesAdded)
	}
	// Indexed blobs leave the session's pending set, which would otherwise grow with the backup.
	if n := len(w.pending); n != 0 {
		t.Errorf("%d blobs still pending after Flush indexed them all", n)
	}
	r.Close()

	// A fresh open sees everything through the index files.
	r2, err := Open(ctx, s, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.BlobCount() != 40 {
		t.Fatalf("reopened repository indexes %d blobs, want 40", r2.BlobCount())
	}
	for i, id := range ids {
		got, err := r2.LoadBlob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, blobs[i]) {
			t.Fatalf("blob %d differs after the round trip", i)
		}
	}
	// With an index budget of ten blobs the index spills to disk, and serves the same.
	r3, err := OpenWith(ctx, s, pass, OpenOptions{IndexMemory: 10 * mapEntryBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if !r3.index.spilled() || r3.BlobCount() != 40 {
		t.Fatalf("index with a budget of 10 blobs: spilled %v, %d blobs; want spilled, 40", r3.index.spilled(), r3.BlobCount())
	}
	for i, id := range ids {
		if got, err := r3.LoadBlob(ctx, id); err != nil || !bytes.Equal(got, blobs[i]) {
			t.Fatalf("blob %d through the spilled index: %v", i, err)
		}
	}
	// A second session adds nothing new.
	w2 := r2.NewWriter(ctx, 1)
	for _, b := range blobs {
		if _, err := w2.Add(DataBlob, b); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := w2.Flush(); err != nil || st.BlobsAdded != 0 {
		t.Fatalf("second session: %+v, %v", st, err)
	}
}

func TestDamagedPackIsNamed(t *testing.T) {
	ctx := context.Background()
	s, r := newTestRepo(t)
	w := r.NewWriter(ctx, 1)
	id, err := w.Add(DataBlob, randomBytes(5000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	pack, e, _ := r.Lookup(id)
	key := packKey(pack)
	data, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data[e.Offset+40] ^= 0x01
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutNew(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	_, err = r.LoadBlob(ctx, id)
	var d *DamagedError
	if !errors.As(err, &d) || d.Object != key {
		t.Fatalf("loading a blob from a damaged pack: %v; want a DamagedError naming %s", err, key)
	}
}

func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	_, r := newTestRepo(t)
	id1, err := r.SaveSnapshot(ctx, &Snapshot{Paths: []string{"/a"}, Tags: map[string]string{"pvc": "data"}})
	if err != nil {
		t.Fatal(err)
	}
	all, err := r.Snapshots(ctx)
	if err != nil || len(all) != 1 || all[0].ID != id1 || all[0].Tags["pvc"] != "data" {
		t.Fatalf("snapshots %+v, %v", all, err)
	}
	if got, err := r.FindSnapshot(ctx, id1.String()[:8]); err != nil || got.ID != id1 {
		t.Fatalf("find by prefix: %v %v", got.ID, err)
	}
	if _, err := r.FindSnapshot(ctx, "ffffffff"); err == nil {
		t.Fatal("found a snapshot that does not exist")
	}

	// Listings stay right across new and forgotten snapshots (manifests are cached).
	id2, err := r.SaveSnapshot(ctx, &Snapshot{Time: time.Now().Add(time.Hour), Paths: []string{"/b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, id1); err != nil {
		t.Fatal(err)
	}
	id3, err := r.SaveSnapshot(ctx, &Snapshot{Time: time.Now().Add(2 * time.Hour), Paths: []string{"/c"}})
	if err != nil {
		t.Fatal(err)
	}
	all, err = r.Snapshots(ctx)
	if err != nil || len(all) != 2 || all[0].ID != id2 || all[1].ID != id3 || all[1].Paths[0] != "/c" {
		t.Fatalf("after a save and a forget: %+v, %v; want %s then %s", all, err, id2, id3)
	}
	all[0].Paths = nil
	if again, _ := r.Snapshots(ctx); len(again[0].Paths) != 1 {
		t.Fatal("a caller's change to a listed snapshot reached the next listing")
	}

	// CachedSnapshot answers from the listing's manifests without the store; LoadSnapshot
	// always asks the store. Removing the object behind the cache tells them apart.
	if err := r.store.Delete(ctx, "snapshots/"+id3.String()); err != nil {
		t.Fatal(err)
	}
	got, err := r.CachedSnapshot(ctx, id3)
	if err != nil || got.Paths[0] != "/c" {
		t.Fatalf("cached snapshot %s: %+v, %v; want the listed manifest", id3, got, err)
	}
	got.Tags = map[string]string{"changed": "by the caller"}
	if again, _ := r.CachedSnapshot(ctx, id3); again.Tags != nil {
		t.Error("a caller's change to a cached snapshot reached the cache")
	}
	if _, err := r.LoadSnapshot(ctx, id3); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("LoadSnapshot of a deleted manifest: %v; want ErrNotFound from the store", err)
	}
	// A manifest not listed yet is read from the store.
	id4, err := r.SaveSnapshot(ctx, &Snapshot{Paths: []string{"/d"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.CachedSnapshot(ctx, id4); err != nil || got.Paths[0] != "/d" {
		t.Fatalf("uncached snapshot %s: %+v, %v", id4, got, err)
	}
}

func TestDecodeEntriesRejectsGarbage(t *testing.T) {
	good := encodeEntries(nil, []PackEntry{{Type: DataBlob, Offset: 0, Length: 100, RawLength: 50}})
	cases := map[string][]byte{
		"empty":           nil,
		"count too large": {0xff, 0xff, 0xff, 0x0f, 1, 2, 3},
		"bad type":        append(append([]byte{}, good[:4]...), append([]byte{9}, good[5:]...)...),
	}
	for name, b := range cases {
		if _, _, err := decodeEntries(b, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := decodeEntries(good, 50); err == nil {
		t.Error("accepted an entry outside the pack")
	}
}

func openMem() (*objstore.Store, error) {
	return objstore.Open(context.Background(), objstore.Config{URL: "mem://"})
}

// RefreshIndex reads only what another writer added, and everything again after a prune
// changed the index.
func TestRefreshIndex(t *testing.T) {
	ctx := context.Background()
	s, r1 := newTestRepo(t)
	r2, err := Open(ctx, s, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	add := func(r *Repository, data []byte) ID {
		t.Helper()
		w := r.NewWriter(ctx, 1)
		id, err := w.Add(DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := add(r2, randomBytes(1000))
	if r1.Has(a) {
		t.Fatal("r1 sees r2's blob before refreshing")
	}
	if err := r1.RefreshIndex(ctx); err != nil || !r1.Has(a) {
		t.Fatalf("after refresh: has=%v err=%v", r1.Has(a), err)
	}
	// A deletion mark (as prune writes) makes the refresh reload: a's pack is marked, so a
	// writer must not deduplicate against it any more.
	pack, _, _ := r1.Lookup(a)
	if _, _, err := r2.putJSON(ctx, "gc/", gcMark{Time: time.Now(), Packs: []ID{pack}}); err != nil {
		t.Fatal(err)
	}
	if err := r1.RefreshIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if r1.Has(a) {
		t.Error("a blob in a pack marked for deletion is still offered for deduplication")
	}
	if _, _, ok := r1.Lookup(a); !ok {
		t.Error("a blob in a marked pack must stay readable until it is deleted")
	}
}

func TestApplyRetentionGroups(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snap := func(i int, pvc string) SnapshotInfo {
		return SnapshotInfo{ID: ID{byte(i)}, Snapshot: &Snapshot{Time: t0.Add(time.Duration(i) * time.Hour), Paths: []string{"/data"}, Tags: map[string]string{"pvc": pvc}}}
	}
	snaps := []SnapshotInfo{snap(1, "a"), snap(2, "b"), snap(3, "a"), snap(4, "b"), snap(5, "a")}
	ds, err := ApplyRetention(snaps, retention.Policy{Last: 1}, DefaultGroupBy, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	var kept []byte
	for _, d := range ds {
		if d.Keep {
			kept = append(kept, d.ID[0])
		}
	}
	if string(kept) != string([]byte{5, 4}) {
		t.Errorf("kept %v, want the newest of each PVC (5 for a, 4 for b)", kept)
	}
	if _, err := ApplyRetention(snaps, retention.Policy{Last: 1}, []string{"host"}, time.UTC); err == nil || !strings.Contains(err.Error(), `group-by "host"`) {
		t.Errorf("unknown group-by: %v", err)
	}
}

// TestSealSkipsIncompressible: a large blob whose samples do not compress is stored as it is,
// without compressing the whole of it; compressible blobs are still compressed, and every
// blob reads back the same.
func TestSealSkipsIncompressible(t *testing.T) {
	ctx := context.Background()
	text := bytes.Repeat([]byte("a line of a log file, repeated until it is long enough\n"), 20000)
	mixed := append(randomBytes(sampleFrom), text...) // random at the start, text after the middle
	for _, compression := range []string{CompressionZstd, CompressionS2} {
		r, err := Init(ctx, memStore(t), pass, InitOptions{Compression: compression})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for _, tc := range []struct {
			name      string
			data      []byte
			skip, raw bool // not compressed at all; stored uncompressed
		}{
			{"random 1 MiB", randomBytes(1 << 20), true, true},
			{"random below the sampling size", randomBytes(sampleFrom / 2), false, true}, // compressed, no gain
			{"text", text, false, false},
			{"random start, text after", mixed, false, false},
		} {
			if skip := r.incompressible(tc.data); skip != tc.skip {
				t.Errorf("%s, %s: judged incompressible %v, want %v", compression, tc.name, skip, tc.skip)
			}
			sealed := r.sealBlob(tc.data)
			plain, err := r.c.open(nil, *sealed)
			if err != nil {
				t.Fatal(err)
			}
			if raw := plain[0] == encodingRaw; raw != tc.raw {
				t.Errorf("%s, %s: stored raw %v, want %v (%d of %d bytes)", compression, tc.name, raw, tc.raw, len(plain)-1, len(tc.data))
			}
			w := r.NewWriter(ctx, 1)
			id, err := w.Add(DataBlob, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, err := r.LoadBlob(ctx, id); err != nil || !bytes.Equal(got, tc.data) {
				t.Errorf("%s, %s: round trip: %v", compression, tc.name, err)
			}
		}
	}
}

// TestPackNamedByContentUnderConcurrentAdds: blobs added from many goroutines finish their
// writes to the staged pack out of order; each pack is still named by the BLAKE3 of its bytes as
// stored, which check --read-data and prune verify. (A pack hashed as blobs arrive, rather than
// read back, fails here unless it hashes in offset order.)
func TestPackNamedByContentUnderConcurrentAdds(t *testing.T) {
	ctx := context.Background()
	s := memStore(t)
	r, err := Init(ctx, s, pass, InitOptions{PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := r.NewWriter(ctx, 3)
	var g errgroup.Group
	for i := range 16 {
		g.Go(func() error {
			for j := range 20 {
				// Sizes from 1 byte to 64 KiB, so that later blobs often finish first.
				if _, err := w.Add(DataBlob, randomBytes(1+(i*7919+j*104729)%(64<<10))); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := w.Flush()
	if err != nil {
		t.Fatal(err)
	}
	packs := 0
	err = s.List(ctx, "data/", func(o objstore.Object) error {
		data, err := s.Get(ctx, o.Key)
		if err != nil {
			return err
		}
		if want := contentID(data).String(); !strings.HasSuffix(o.Key, want) {
			t.Errorf("pack %s holds bytes whose hash is %s", o.Key, want)
		}
		packs++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if packs < 10 || int64(packs) != st.PacksWritten {
		t.Fatalf("%d packs listed, %d written: want the same, and ten or more", packs, st.PacksWritten)
	}
}
