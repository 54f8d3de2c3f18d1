package fscopy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Usage returns the bytes of regular-file content under dir (apparent sizes, holes included,
// each hard-linked file once: what Copy copies) and the number of entries under dir, dir itself
// excluded, sockets not counted (Copy skips them). It walks like Copy, never following symlinks.
func Usage(ctx context.Context, dir string) (bytes, entries int64, err error) {
	root, err := openDir(unix.AT_FDCWD, dir, dir)
	if err != nil {
		return 0, 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	defer root.Close()
	u := usage{seen: map[inode]bool{}}
	if err := u.walk(ctx, root, dir); err != nil {
		return 0, 0, err
	}
	return u.bytes, u.entries, nil
}

type usage struct {
	bytes, entries int64
	seen           map[inode]bool // multiply-linked files already counted
}

func (u *usage) walk(ctx context.Context, dir *os.File, path string) error {
	dfd := int(dir.Fd())
	return eachName(dir, path, func(name string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("measuring %s: %w", path, err)
		}
		p := filepath.Join(path, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return vanished(fmt.Errorf("measuring %s: %w", p, os.NewSyscallError("fstatat", err)))
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFSOCK:
			return nil
		case unix.S_IFDIR:
			sub, err := openDir(dfd, name, p)
			if err != nil {
				return vanished(fmt.Errorf("measuring %s: %w", p, err))
			}
			defer sub.Close()
			u.entries++
			return u.walk(ctx, sub, p)
		case unix.S_IFREG:
			u.entries++
			if st.Nlink > 1 {
				k := inode{st.Dev, st.Ino}
				if u.seen[k] {
					return nil
				}
				u.seen[k] = true
			}
			u.bytes += st.Size
		default:
			u.entries++
		}
		return nil
	})
}
