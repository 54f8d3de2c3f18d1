package archive

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// nodeFromPath makes a node from a file's metadata (without content). prev is its entry in the
// parent snapshot, if any: when it is the very same inode, unchanged since (inode, device and
// ctime equal), its extended attributes are taken from it rather than listed again — setting or
// removing an attribute changes ctime — which saves a syscall a file on backups of a live tree
// (a fifth of the CPU of an unchanged backup of many files). Snapshot copies have new inodes
// and are listed.
func nodeFromPath(p, name string, prev *Node) (Node, error) {
	return nodeAt(unix.AT_FDCWD, p, p, name, prev)
}

// nodeAt is nodeFromPath for the entry at in the open directory dirfd (at is relative to it), p
// being its path: the kernel then walks one name, not the whole path, for the lstat.
func nodeAt(dirfd int, at, p, name string, prev *Node) (Node, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, at, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Node{}, fmt.Errorf("reading metadata of %s: %w", p, err)
	}
	return nodeFromStat(&st, p, name, prev)
}

// nodeFromStat is nodeAt for an entry already lstat'ed.
func nodeFromStat(st *unix.Stat_t, p, name string, prev *Node) (Node, error) {
	n := statNode(st)
	n.Name = name
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		n.Type = TypeDir
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return Node{}, fmt.Errorf("reading symlink %s: %w", p, err)
		}
		n.Type, n.LinkTarget = TypeSymlink, target
	case unix.S_IFIFO:
		n.Type = TypeFifo
	default:
		return Node{}, fmt.Errorf("%s: sockets and device files are not backed up", p)
	}
	if prev != nil && prev.Inode == n.Inode && prev.Device == n.Device && prev.CTime.Equal(n.CTime) && prev.Type == n.Type {
		n.Xattrs = prev.Xattrs
		return n, nil
	}
	xattrs, err := readXattrs(p)
	if err != nil {
		return Node{}, err
	}
	n.Xattrs = xattrs
	return n, nil
}

// statNode is the metadata of st as a node: no name, no content, and a type only for a
// regular file.
func statNode(st *unix.Stat_t) Node {
	n := Node{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, MTime: timeOf(st.Mtim), CTime: timeOf(st.Ctim),
		Inode: st.Ino, Device: st.Dev, links: uint64(st.Nlink)}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		n.Type, n.Size = TypeFile, st.Size
	}
	return n
}

func timeOf(ts unix.Timespec) time.Time { return time.Unix(ts.Unix()).UTC() }

func readXattrs(p string) ([]Xattr, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || size <= 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing extended attributes of %s: %w", p, err)
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("listing extended attributes of %s: %w", p, err)
	}
	var out []Xattr
	for _, name := range splitNul(buf[:size]) {
		vsize, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("reading extended attribute %s of %s: %w", name, p, err)
		}
		val := make([]byte, vsize)
		if vsize > 0 {
			if vsize, err = unix.Lgetxattr(p, name, val); err != nil {
				return nil, fmt.Errorf("reading extended attribute %s of %s: %w", name, p, err)
			}
		}
		out = append(out, Xattr{Name: name, Value: val[:vsize]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}

// openFile is os.OpenFile for the files a backup reads and a restore writes, without the
// runtime's poller. os.OpenFile offers every file to epoll (which refuses regular files) and
// switches O_NONBLOCK on and off around the attempt: four fcntl and a failing epoll_ctl a
// file, 1.7% of an initial backup's CPU on 20,000 small files (perf, 2026-12-07), more where
// syscalls are dear (virtual machines). A descriptor handed to os.NewFile skips all that; reads
// and writes of regular files block their thread either way.
func openFile(p string, flag int, perm uint32) (*os.File, error) {
	for {
		fd, err := unix.Open(p, flag|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue // the runtime's preemption signals interrupt opens on slow file systems
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return os.NewFile(uintptr(fd), p), nil
	}
}
