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
