package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Extent-level change detection. A snapshot on XFS or btrfs is a reflink copy (the agent's
// fscopy clones every file with FICLONE): it shares its blocks with the previous snapshot until
// the volume's writer changes them, and a changed block is written somewhere new (copy on
// write). So where a file's block at some offset is the very block the previous snapshot's copy
// of the file has at that offset, the two hold the same bytes there, and the parent backup's
// chunks covering only such blocks can be reused without reading them. FIEMAP tells where each
// file's blocks are.
//
// This needs the parent's source tree still on disk, unchanged since the parent backup read
// it: each parent file is checked against its entry in the parent snapshot (size, mtime, mode,
// owner: the test of unchanged) before its blocks are trusted. On a file system without
// reflinks (ext4) two files never share a block and nothing is reused.

// extent is one mapped range of a file: logical offset, physical offset, length, in bytes.
type extent struct{ logical, physical, length uint64 }

// FIEMAP's structures (linux/fiemap.h). golang.org/x/sys has neither them nor the ioctl number,
// and no maintained Go module wraps FIEMAP, so they are declared here.
type fiemapHeader struct {
	start, length                     uint64
	flags, mappedExtents, extentCount uint32
	_                                 uint32
}

type fiemapExtent struct {
	logical, physical, length uint64
	_                         [2]uint64
	flags                     uint32
	_                         [3]uint32
}

const (
	// fsIocFiemap is _IOWR('f', 11, struct fiemap), which golang.org/x/sys/unix leaves out.
	fsIocFiemap      = 0xC020660B
	fiemapFlagSync   = 0x1
	fiemapExtentLast = 0x1
	// Extents whose physical offset says nothing about their bytes: not yet allocated
	// (unknown, delalloc), stored transformed (encoded: compressed btrfs extents share a
	// physical start across different bytes; encrypted), inline in metadata or packed with
	// other files' tails (not aligned, inline, tail), or preallocated and unwritten.
	fiemapExtentUntrusted = 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
	fiemapBatch           = 256
)

// fileExtents returns the extents of the open file f whose physical offset identifies their
// bytes, in logical order, after flushing its dirty pages (so delayed allocations are placed).
func fileExtents(f *os.File) ([]extent, error) {
	buf := make([]byte, unsafe.Sizeof(fiemapHeader{})+fiemapBatch*unsafe.Sizeof(fiemapExtent{}))
	hdr := (*fiemapHeader)(unsafe.Pointer(&buf[0]))
	exts := unsafe.Slice((*fiemapExtent)(unsafe.Pointer(&buf[unsafe.Sizeof(fiemapHeader{})])), fiemapBatch)
	var out []extent
	start, flags := uint64(0), uint32(fiemapFlagSync)
	for {
		*hdr = fiemapHeader{start: start, length: ^uint64(0) - start, flags: flags, extentCount: fiemapBatch}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
			return nil, fmt.Errorf("mapping the extents of %s: %w", f.Name(), os.NewSyscallError("ioctl FIEMAP", errno))
		}
		flags = 0
		n := int(hdr.mappedExtents)
		if n == 0 {
			return out, nil
		}
		for _, e := range exts[:n] {
			if e.flags&fiemapExtentUntrusted == 0 {
				out = append(out, extent{logical: e.logical, physical: e.physical, length: e.length})
			}
		}
		last := exts[n-1]
		if last.flags&fiemapExtentLast != 0 {
			return out, nil
		}
		start = last.logical + last.length
	}
}

// sharedRanges returns the logical byte ranges [start, end) where a and b (each in logical
// order) map the same offset to the same physical bytes, merged where they touch.
func sharedRanges(a, b []extent) [][2]uint64 {
	var out [][2]uint64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		x, y := a[i], b[j]
		lo, hi := max(x.logical, y.logical), min(x.logical+x.length, y.logical+y.length)
		if lo < hi && x.physical-x.logical == y.physical-y.logical {
			if k := len(out) - 1; k >= 0 && out[k][1] == lo {
				out[k][1] = hi
			} else {
				out = append(out, [2]uint64{lo, hi})
			}
		}
		if x.logical+x.length <= y.logical+y.length {
			i++
		} else {
			j++
		}
	}
	return out
}

// parentShared returns the ranges of f (the file at rel, with metadata cur) that share their
// blocks with the parent source's copy of it, whose entry in the parent snapshot is prev; none
// if that copy is gone, is f itself, lives on another file system or changed since the parent
// read it. Errors mapping either file leave the file to be read whole, as without a parent
// source; they are not the backup's errors.
func (a *archiver) parentShared(f *os.File, rel string, cur, prev *Node) [][2]uint64 {
	if a.parentSource == "" {
		return nil
	}
	pf, err := os.Open(filepath.Join(a.parentSource, filepath.FromSlash(rel)))
	if err != nil {
		return nil
	}
	defer pf.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(pf.Fd()), &st); err != nil {
		return nil
	}
	then := statNode(&st)
	if then.Type != TypeFile || then.Device != cur.Device || then.Inode == cur.Inode || !unchanged(prev, &then) {
		return nil
	}
	mine, err := fileExtents(f)
	if err != nil || len(mine) == 0 {
		return nil
	}
	theirs, err := fileExtents(pf)
	if err != nil {
		return nil
	}
	return sharedRanges(mine, theirs)
}
