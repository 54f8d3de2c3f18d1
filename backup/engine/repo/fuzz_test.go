package repo

import (
	"context"
	"encoding/binary"
	"testing"
)

// Fuzz targets for every decoder of repository data: whatever a damaged or hostile bucket holds,
// decoding returns an error and never panics or allocates without bound. `go test` runs their
// seed corpus; `go test -fuzz FuzzX ./backup/engine/repo` explores further.

func FuzzDecodeEntries(f *testing.F) {
	f.Add(encodeEntries(nil, []PackEntry{{Type: DataBlob, Offset: 0, Length: 100, RawLength: 60}}), uint32(0))
	f.Add(encodeEntries(nil, nil), uint32(10))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, limit uint32) {
		entries, _, err := decodeEntries(b, limit)
		if err != nil {
			return
		}
		for _, e := range entries {
			if limit > 0 && uint64(e.Offset)+uint64(e.Length) > uint64(limit) {
				t.Fatalf("entry %+v outside limit %d accepted", e, limit)
			}
		}
	})
}

func FuzzPackTrailer(f *testing.F) {
	f.Add(int64(1000), []byte{10, 0, 0, 0})
	f.Add(int64(3), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, size int64, last []byte) {
		if len(last) != 4 {
			return
		}
		off, n, err := parsePackTrailer(size, last)
		if err == nil && (off < 0 || off+int64(n)+4 != size) {
			t.Fatalf("header at %d+%d does not end a pack of %d", off, n, size)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	s, err := openMem()
	if err != nil {
		f.Fatal(err)
	}
	r, err := Init(context.Background(), s, UserKey{Raw: make([]byte, 32)}, InitOptions{})
	if err != nil {
		f.Fatal(err)
	}
	good := r.encodeIndex([]IndexedPack{{ID: ID{1}, Entries: []PackEntry{{Type: TreeBlob, ID: ID{2}, Length: 50, RawLength: 10}}}})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = r.decodeIndex(b)
		_, _ = r.OpenBlob("fuzz", PackEntry{ID: ID{3}, RawLength: binary.LittleEndian.Uint32(append(b, 0, 0, 0, 0)[:4]) % maxBlobSize}, b, nil)
	})
}

func FuzzUnwrapKeys(f *testing.F) {
	mk, err := newMasterKeys()
	if err != nil {
		f.Fatal(err)
	}
	data, _, err := wrapKeys(mk, UserKey{Raw: make([]byte, 32)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"kdf":"scrypt","n":1073741824,"r":1,"p":1}`))
	f.Add([]byte(`{"kdf":"raw","sealed":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = unwrapKeys(b, UserKey{Raw: make([]byte, 32)})
	})
}

// FuzzSealedJSON stores fuzzed plaintext sealed with the repository's key (what a writer holding
// the key could put there) as a snapshot manifest, a lock and a deletion mark, and reads each
// back the way the repository does: errors, never panics.
func FuzzSealedJSON(f *testing.F) {
	ctx := context.Background()
	s, err := openMem()
	if err != nil {
		f.Fatal(err)
	}
	r, err := Init(ctx, s, UserKey{Raw: make([]byte, 32)}, InitOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"time":"2026-01-02T03:04:05Z","tree":"00","paths":["/x"],"tags":{"a":"b"}}`))
	f.Add([]byte(`{"tree":"zz","parent":"01"}`))
	f.Add([]byte(`{"host":"h","pid":-1,"expires":"9999-12-31T23:59:59Z"}`))
	f.Add([]byte(`{"packs":["0011"],"time":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		sealed := r.c.seal(nil, plain)
		id := contentID(sealed)
		for _, key := range []string{"snapshots/" + id.String(), "locks/" + id.String(), "gc/" + id.String()} {
			if _, err := s.PutNew(ctx, key, sealed); err != nil {
				t.Fatal(err)
			}
		}
		if snap, err := r.LoadSnapshot(ctx, id); err == nil {
			_, _ = r.LoadBlob(ctx, snap.Tree)
		}
		_, _ = r.Snapshots(ctx)
		_, _ = r.liveLocks(ctx)
		_, _ = r.gcMarks(ctx)
		for _, key := range []string{"snapshots/" + id.String(), "locks/" + id.String(), "gc/" + id.String()} {
			_ = s.Delete(ctx, key)
		}
	})
}
