package fscopy

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// meta is what Copy carries over besides content.
type meta struct {
	ino          inode
	mode         uint32 // permission bits with setuid, setgid and sticky
	uid, gid     uint32
	atime, mtime unix.Timespec
	xattrs       []xattr
}

type xattr struct {
	name  string
	value []byte
}

func metaOf(st *unix.Stat_t, xattrs []xattr) meta {
	return meta{
		ino:  inode{st.Dev, st.Ino},
		mode: st.Mode & 0o7777,
		uid:  st.Uid, gid: st.Gid,
		atime: st.Atim, mtime: st.Mtim,
		xattrs: xattrs,
	}
}

// dirMeta reads the metadata of an open directory; stat'ing the descriptor rather than the
// name describes what is actually walked.
func dirMeta(dir *os.File, path string) (meta, error) {
	fd := int(dir.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return meta{}, fmt.Errorf("copying %s: %w", path, os.NewSyscallError("fstat", err))
	}
	xattrs, err := fdXattrs(fd, path)
	if err != nil {
		return meta{}, err
	}
	return metaOf(&st, xattrs), nil
}

// applyMeta sets m on path without following a symlink there. The owner goes first since
// chown clears setuid, setgid and the security.capability attribute; the times go last so
// that nothing done after them can move them.
func applyMeta(path string, m meta, symlink bool) error {
	if err := unix.Lchown(path, int(m.uid), int(m.gid)); err != nil {
		return fmt.Errorf("setting owner of %s: %w", path, os.NewSyscallError("lchown", err))
	}
	// Linux ignores a symlink's mode, and chmod would follow it.
	if !symlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, path, m.mode, 0); err != nil {
			return fmt.Errorf("setting mode of %s: %w", path, os.NewSyscallError("fchmodat", err))
		}
	}
	for _, x := range m.xattrs {
		if err := unix.Lsetxattr(path, x.name, x.value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setting extended attribute %s of %s: %w", x.name, path, os.NewSyscallError("lsetxattr", err))
		}
	}
	ts := []unix.Timespec{m.atime, m.mtime}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times of %s: %w", path, os.NewSyscallError("utimensat", err))
	}
	return nil
}

// fdXattrs reads the extended attributes of an open file or directory.
func fdXattrs(fd int, path string) ([]xattr, error) {
	xs, err := readXattrs(
		func(dest []byte) (int, error) { return unix.Flistxattr(fd, dest) },
		func(name string, dest []byte) (int, error) { return unix.Fgetxattr(fd, name, dest) })
	if err != nil {
		return nil, fmt.Errorf("copying %s: reading extended attributes: %w", path, err)
	}
	return xs, nil
}

// pathXattrs reads the extended attributes of a symlink or FIFO, which cannot be opened for
// reading without following or blocking.
func pathXattrs(path string) ([]xattr, error) {
	xs, err := readXattrs(
		func(dest []byte) (int, error) { return unix.Llistxattr(path, dest) },
		func(name string, dest []byte) (int, error) { return unix.Lgetxattr(path, name, dest) })
	if err != nil {
		return nil, fmt.Errorf("copying %s: reading extended attributes: %w", path, err)
	}
	return xs, nil
}

// readXattrs lists and reads extended attributes, sizing buffers with a first call; an
// attribute that grows between the calls makes it start over (ERANGE).
func readXattrs(list func(dest []byte) (int, error), get func(name string, dest []byte) (int, error)) ([]xattr, error) {
	var names []byte
	for {
		n, err := list(nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, os.NewSyscallError("listxattr", err)
		}
		if n == 0 {
			return nil, nil
		}
		names = make([]byte, n)
		n, err = list(names)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("listxattr", err)
		}
		names = names[:n]
		break
	}
	var xs []xattr
	for name := range bytes.SplitSeq(bytes.TrimSuffix(names, []byte{0}), []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v, err := getXattr(string(name), get)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		xs = append(xs, xattr{name: string(name), value: v})
	}
	return xs, nil
}

func getXattr(name string, get func(name string, dest []byte) (int, error)) ([]byte, error) {
	for {
		n, err := get(name, nil)
		if err != nil {
			return nil, os.NewSyscallError("getxattr", err)
		}
		v := make([]byte, n)
		n, err = get(name, v)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("getxattr", err)
		}
		return v[:n], nil
	}
}
