package repo

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultIndexMemory is how much memory the blob index may take before it spills to disk:
// about 2.5 million blobs (2.5 TiB of 1 MiB chunks, or as many small files). In a container
// with a memory limit, the default is at most a quarter of the limit (defaultIndexMemory).
const DefaultIndexMemory = 256 << 20

// defaultIndexMemory is DefaultIndexMemory, or a quarter of the cgroup's memory limit if that is
// less: an agent or data mover limited to 512 MiB keeps its index to 128 MiB.
func defaultIndexMemory() int64 {
	data, _ := os.ReadFile("/sys/fs/cgroup/memory.max")
	return indexMemoryFor(string(data))
}

// indexMemoryFor computes the default budget from the content of cgroup v2's memory.max
// ("max", a number of bytes, or nothing outside a cgroup).
func indexMemoryFor(memoryMax string) int64 {
	limit, err := strconv.ParseInt(strings.TrimSpace(memoryMax), 10, 64)
	if err != nil || limit <= 0 {
		return DefaultIndexMemory
	}
	return min(DefaultIndexMemory, limit/4)
}

// mapEntryBytes is what a blob costs in the in-memory index, measured: 32 bytes of ID, 20 of
// location, and the Go map's control bytes and free slots, 73 to 117 bytes per entry depending
// on where the map is in its growth (BenchmarkIndexMemory).
const mapEntryBytes = 100

// blobIndex maps blob IDs to their locations. It is a Go map until it would take more than its
// memory budget; then it spills: its entries move to a file mapped into memory, sorted by ID
// (52 bytes each, no pointers), which the kernel pages in and out as any file, and new entries
// collect in a small map that is merged into the file now and then. The file is unlinked as
// soon as it is made, so a killed process leaves nothing behind.
//
// Written by hand because no maintained library offers a mmap-backed sorted table with Go
// map semantics and in-place updates; it is a sorted array and a merge.
type blobIndex struct {
	budget   int64
	tempFile func() (*os.File, error)

	recent map[ID]location // all entries until spilled, then those since the last merge
	spill  *spillFile      // nil until spilled
	// spillErr is why spilling failed, if it did; the index then stays in memory.
	spillErr error
}

// indexEntry is one entry of a spilled index. It holds no pointers: it may live outside the
// Go heap.
type indexEntry struct {
	id  ID
	loc location
}

const indexEntrySize = int(unsafe.Sizeof(indexEntry{}))

// spillFile is a sorted run of entries in an unlinked, mapped file.
type spillFile struct {
	f       *os.File
	data    []byte       // the mapping
	entries []indexEntry // data viewed as entries
}

func newBlobIndex(budget int64, tempFile func() (*os.File, error)) *blobIndex {
	if budget <= 0 {
		budget = defaultIndexMemory()
	}
	return &blobIndex{budget: budget, tempFile: tempFile, recent: map[ID]location{}}
}

func (x *blobIndex) len() int {
	n := len(x.recent)
	if x.spill != nil {
		n += len(x.spill.entries)
	}
	return n
}

// spilled says whether the index lives on disk.
func (x *blobIndex) spilled() bool { return x.spill != nil }

func (x *blobIndex) find(id ID) (int, bool) {
	if x.spill == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(x.spill.entries, id, func(e indexEntry, id ID) int { return bytes.Compare(e.id[:], id[:]) })
}

func (x *blobIndex) get(id ID) (location, bool) {
	if l, ok := x.recent[id]; ok {
		return l, true
	}
	if i, ok := x.find(id); ok {
		return x.spill.entries[i].loc, true
	}
	return location{}, false
}

// set adds or replaces an entry. An entry is in the map or in the file, never both.
func (x *blobIndex) set(id ID, l location) {
	if i, ok := x.find(id); ok {
		x.spill.entries[i].loc = l
		return
	}
	x.recent[id] = l
	if x.spill == nil {
		if int64(len(x.recent))*mapEntryBytes > x.budget && x.spillErr == nil {
			x.spillErr = x.merge()
		}
		return
	}
	// Merging rewrites no entry: the file grows and the runs are merged from the end. The map
	// may hold an eighth of the file (each entry is moved about eight times on average) but
	// no more than a quarter of the budget.
	limit := min(max(4096, len(x.spill.entries)/8), int(x.budget/4/mapEntryBytes))
	if len(x.recent) >= max(limit, 1) {
		if err := x.merge(); err != nil {
			x.spillErr = err // the entries stay in the map
		}
	}
}

// merge moves the map's entries into the spill file, making it on the first call.
func (x *blobIndex) merge() error {
	add := make([]indexEntry, 0, len(x.recent))
	for id, l := range x.recent {
		add = append(add, indexEntry{id, l})
	}
	slices.SortFunc(add, func(a, b indexEntry) int { return bytes.Compare(a.id[:], b.id[:]) })
	old := 0
	if x.spill == nil {
		f, err := x.tempFile()
		if err != nil {
			return fmt.Errorf("spilling the blob index to disk: %w", err)
		}
		// Unlinked at once: the open file is all that keeps it.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return fmt.Errorf("spilling the blob index to disk: %w", err)
		}
		x.spill = &spillFile{f: f}
	} else {
		old = len(x.spill.entries)
	}
	if err := x.spill.grow(old + len(add)); err != nil {
		if old == 0 {
			x.spill.close()
			x.spill = nil
		}
		return fmt.Errorf("spilling the blob index to disk: %w", err)
	}
	// Merge from the end, so that no entry of the file is overwritten before it is moved.
	e := x.spill.entries
	i, j := old-1, len(add)-1
	for k := len(e) - 1; j >= 0; k-- {
		if i >= 0 && bytes.Compare(e[i].id[:], add[j].id[:]) > 0 {
			e[k] = e[i]
			i--
		} else {
			e[k] = add[j]
			j--
		}
	}
	x.recent = map[ID]location{}
	return nil
}

// grow makes the file and its mapping hold n entries, keeping the first ones.
func (s *spillFile) grow(n int) error {
	size := n * indexEntrySize
	if err := s.f.Truncate(int64(size)); err != nil {
		return err
	}
	var data []byte
	var err error
	if s.data == nil {
		data, err = unix.Mmap(int(s.f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	} else {
		data, err = unix.Mremap(s.data, size, unix.MREMAP_MAYMOVE)
	}
	if err != nil {
		return err
	}
	s.data = data
	s.entries = unsafe.Slice((*indexEntry)(unsafe.Pointer(unsafe.SliceData(data))), n)
	return nil
}

func (s *spillFile) close() {
	if s.data != nil {
		_ = unix.Munmap(s.data)
	}
	s.data, s.entries = nil, nil
	s.f.Close()
}

// close releases the spill file, if any.
func (x *blobIndex) close() {
	if x.spill != nil {
		x.spill.close()
		x.spill = nil
	}
}
