package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// BlobType says what a blob holds.
type BlobType uint8

const (
	// DataBlob is a chunk of file content.
	DataBlob BlobType = 1
	// TreeBlob is a directory listing (see backup/engine/archive).
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// PackEntry locates one sealed blob inside a pack.
type PackEntry struct {
	Type BlobType
	ID   ID
	// Offset and Length are the sealed blob's place in the pack.
	Offset uint32
	Length uint32
	// RawLength is the plaintext length.
	RawLength uint32
}

// A pack is sealed blobs back to back, then the sealed pack header listing them, then the
// header's sealed length as 4 bytes little-endian. The header makes every pack self-describing,
// so indexes can be rebuilt from packs alone.
const entrySize = 1 + 32 + 4 + 4 + 4

// Sanity bounds for decoding untrusted data.
const (
	maxPackSize   = 1 << 30
	maxBlobSize   = 64 << 20
	maxHeaderSize = 16 << 20
)

func encodeEntries(dst []byte, entries []PackEntry) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(entries)))
	for _, e := range entries {
		dst = append(dst, byte(e.Type))
		dst = append(dst, e.ID[:]...)
		dst = binary.LittleEndian.AppendUint32(dst, e.Offset)
		dst = binary.LittleEndian.AppendUint32(dst, e.Length)
		dst = binary.LittleEndian.AppendUint32(dst, e.RawLength)
	}
	return dst
}

// decodeEntries decodes a list written by encodeEntries from the front of b and returns the
// rest. limit bounds where blobs may lie (the pack's data section); 0 means no bound.
func decodeEntries(b []byte, limit uint32) ([]PackEntry, []byte, error) {
	if len(b) < 4 {
		return nil, nil, errors.New("entry list truncated")
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	if uint64(n)*entrySize > uint64(len(b)) {
		return nil, nil, fmt.Errorf("entry list claims %d entries in %d bytes", n, len(b))
	}
	entries := make([]PackEntry, n)
	for i := range entries {
		e := &entries[i]
		e.Type = BlobType(b[0])
		copy(e.ID[:], b[1:33])
		e.Offset = binary.LittleEndian.Uint32(b[33:])
		e.Length = binary.LittleEndian.Uint32(b[37:])
		e.RawLength = binary.LittleEndian.Uint32(b[41:])
		b = b[entrySize:]
		if e.Type != DataBlob && e.Type != TreeBlob {
			return nil, nil, fmt.Errorf("entry %d has unknown type %d", i, e.Type)
		}
		if e.Length < sealOverhead+1 || e.Length > maxBlobSize+sealOverhead+1 || e.RawLength > maxBlobSize {
			return nil, nil, fmt.Errorf("entry %d has impossible lengths %d/%d", i, e.Length, e.RawLength)
		}
		if limit > 0 && uint64(e.Offset)+uint64(e.Length) > uint64(limit) {
			return nil, nil, fmt.Errorf("entry %d lies outside the pack's data (%d+%d > %d)", i, e.Offset, e.Length, limit)
		}
	}
	return entries, b, nil
}

// parsePackTrailer returns where the sealed header starts, given the whole pack's size and its
// last 4 bytes.
func parsePackTrailer(size int64, last4 []byte) (headerOffset int64, headerLen uint32, err error) {
	if size < 4+sealOverhead || size > maxPackSize {
		return 0, 0, fmt.Errorf("pack size %d is impossible", size)
	}
	headerLen = binary.LittleEndian.Uint32(last4)
	if headerLen > maxHeaderSize || int64(headerLen)+4 > size {
		return 0, 0, fmt.Errorf("pack header length %d does not fit a pack of %d bytes", headerLen, size)
	}
	return size - 4 - int64(headerLen), headerLen, nil
}

// packKey is the object key of a pack.
func packKey(id ID) string {
	s := id.String()
	return "data/" + s[:2] + "/" + s
}
