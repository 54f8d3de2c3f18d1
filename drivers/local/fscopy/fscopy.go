package fscopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

const (
	// Most volumes hold many small files, whose copies are dominated by syscall latency rather
	// than bandwidth; a few at once keep the disk busy without starving the node's workloads.
	workers = 4
	// Big files are copied in pieces so that cancellation and the bandwidth limit take effect
	// within one piece.
	chunkSize        = 8 << 20
	progressInterval = 200 * time.Millisecond
)

// Options for Copy.
type Options struct {
	// Progress, if set, is called with the bytes of file content copied so far and the total
	// (from a first walk of src), at most every 200ms from a single goroutine, and once more
	// when Copy finishes. Holes and reflinked files count as copied. If src changed during the
	// copy, the final call of a successful copy reports done as the total.
	Progress func(done, total int64)
	// BytesPerSecond limits the bandwidth of copied content (0 = unlimited). Reflinked files
	// and holes move no data and are not limited.
	BytesPerSecond int64
}

// Stats of a finished copy.
type Stats struct {
	// Files counts regular files and FIFOs (for hard-linked ones, the first name only);
	// Dirs counts directories below the root.
	Files, Dirs, Symlinks int64
	// Hardlinks counts names made with link(2) to an entry copied under another name.
	Hardlinks int64
	// Bytes of regular-file content, holes included, each hard-linked file once.
	Bytes int64
	// Reflinked counts the files cloned with FICLONE rather than copied.
	Reflinked int64
}

// Copy copies the tree at src into dst, which must not exist (its parent must). src itself must
// be a directory, not a symlink to one; no symlink below it is followed, entries that vanish
// during the copy are skipped, sockets are skipped, and device files are an error. On error dst
// may hold a partial copy, which the caller removes.
func Copy(ctx context.Context, src, dst string, opts Options) (_ Stats, err error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("copying %s: %w", src, err)
	}
	root, err := openDir(unix.AT_FDCWD, src, src)
	if err != nil {
		return Stats{}, fmt.Errorf("copying %s: %w", src, err)
	}
	defer root.Close()
	rootMeta, err := dirMeta(root, src)
	if err != nil {
		return Stats{}, err
	}

	if err := unix.Mkdir(dst, 0o700); err != nil {
		return Stats{}, fmt.Errorf("copying %s: creating %s: %w", src, dst, os.NewSyscallError("mkdir", err))
	}
	var dstSt unix.Stat_t
	if err := unix.Lstat(dst, &dstSt); err != nil {
		return Stats{}, fmt.Errorf("copying %s: %w", src, &os.PathError{Op: "lstat", Path: dst, Err: err})
	}

	c := &copier{
		dstRoot:    inode{dstSt.Dev, dstSt.Ino},
		firstNames: map[inode]string{},
		dirs:       []dirJob{{path: dst, m: rootMeta}},
	}
	if opts.BytesPerSecond > 0 {
		// A tenth of a second's worth per piece keeps the rate smooth over short copies.
		burst := int(min(max(opts.BytesPerSecond/10, 32<<10), chunkSize))
		c.lim = rate.NewLimiter(rate.Limit(opts.BytesPerSecond), burst)
		// The bucket starts full; drained, a copy smaller than one burst is limited too.
		c.lim.AllowN(time.Now(), burst)
	}
	if opts.Progress != nil {
		total, _, uerr := Usage(ctx, src)
		if uerr != nil {
			return Stats{}, uerr
		}
		stop := c.reportProgress(opts.Progress, total)
		defer func() {
			done := c.done.Load()
			if err == nil {
				total = done
			}
			stop(done, max(total, done))
		}()
	}

	g, gctx := errgroup.WithContext(ctx)
	// The walker holds one slot while it hands files to the others.
	g.SetLimit(workers + 1)
	g.Go(func() error { return c.walk(gctx, g, root, src, dst) })
	if err = g.Wait(); err != nil {
		return Stats{}, err
	}
	if err = c.finish(ctx); err != nil {
		return Stats{}, err
	}
	return c.stats(), nil
}

// inode identifies a file across its names.
type inode struct{ dev, ino uint64 }

// dirJob is a copied directory whose metadata is applied once everything inside it is written,
// since every entry created in a directory changes its mtime.
type dirJob struct {
	path string
	m    meta
}

type link struct{ existing, name string }

type copier struct {
	lim     *rate.Limiter
	dstRoot inode

	// Only the walker goroutine touches these while the copy runs.
	firstNames map[inode]string // dst name of the first copy of each multiply-linked inode
	links      []link
	dirs       []dirJob // in pre-order, so that reversed, children come before their parents

	done                                                atomic.Int64 // content bytes, for progress
	files, nDirs, symlinks, hardlinks, bytes, reflinked atomic.Int64
}

func (c *copier) stats() Stats {
	return Stats{
		Files: c.files.Load(), Dirs: c.nDirs.Load(), Symlinks: c.symlinks.Load(),
		Hardlinks: c.hardlinks.Load(), Bytes: c.bytes.Load(), Reflinked: c.reflinked.Load(),
	}
}

// walk copies the entries of dir, creating directories, symlinks and FIFOs itself and handing
// regular files to the group. Every source entry is opened relative to its parent's descriptor
// and without following symlinks, so a component of src swapped for a symlink mid-copy cannot
// lead the copy outside src; every destination path is dst joined with checked entry names.
func (c *copier) walk(ctx context.Context, g *errgroup.Group, dir *os.File, srcDir, dstDir string) error {
	dfd := int(dir.Fd())
	return eachName(dir, srcDir, func(name string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("copying %s: %w", srcDir, err)
		}
		srcPath, dstPath := filepath.Join(srcDir, name), filepath.Join(dstDir, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return vanished(fmt.Errorf("copying %s: %w", srcPath, os.NewSyscallError("fstatat", err)))
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return c.copyDir(ctx, g, dfd, name, srcPath, dstPath)
		case unix.S_IFREG:
			if c.linked(&st, dstPath) {
				return nil
			}
			fd, opened, err := openFile(dfd, name, srcPath)
			if err != nil {
				return c.vanished(&st, err)
			}
			g.Go(func() error { return c.copyFile(ctx, fd, &opened, srcPath, dstPath) })
			return nil
		case unix.S_IFLNK:
			if c.linked(&st, dstPath) {
				return nil
			}
			return c.copySymlink(dfd, name, &st, srcPath, dstPath)
		case unix.S_IFIFO:
			if c.linked(&st, dstPath) {
				return nil
			}
			return c.copyFIFO(&st, srcPath, dstPath)
		case unix.S_IFSOCK:
			// A socket is only meaningful to the process listening on it.
			return nil
		case unix.S_IFCHR, unix.S_IFBLK:
			return fmt.Errorf("copying %s: device files are not copied (volumes should not hold them)", srcPath)
		default:
			return fmt.Errorf("copying %s: unknown file type %#o", srcPath, st.Mode&unix.S_IFMT)
		}
	})
}

// vanished drops the error of an entry removed from src since its directory was listed: a
// live volume changes while it is copied, and what is gone need not be copied.
func vanished(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// vanished is vanished for a non-directory that linked has just recorded as its inode's first
// name: the record goes too, so that a name of the inode met later is copied rather than
// linked to nothing.
func (c *copier) vanished(st *unix.Stat_t, err error) error {
	if err = vanished(err); err == nil && st.Nlink > 1 {
		delete(c.firstNames, inode{st.Dev, st.Ino})
	}
	return err
}

func (c *copier) copyDir(ctx context.Context, g *errgroup.Group, parent int, name, srcPath, dstPath string) error {
	sub, err := openDir(parent, name, srcPath)
	if err != nil {
		return vanished(fmt.Errorf("copying %s: %w", srcPath, err))
	}
	defer sub.Close()
	m, err := dirMeta(sub, srcPath)
	if err != nil {
		return err
	}
	if m.ino == c.dstRoot {
		return fmt.Errorf("copying %s: it is the destination directory, which must not be inside the source", srcPath)
	}
	if err := unix.Mkdir(dstPath, 0o700); err != nil {
		return fmt.Errorf("copying %s: creating %s: %w", srcPath, dstPath, os.NewSyscallError("mkdir", err))
	}
	c.dirs = append(c.dirs, dirJob{path: dstPath, m: m})
	c.nDirs.Add(1)
	return c.walk(ctx, g, sub, srcPath, dstPath)
}

// linked reports whether the entry is another name of an inode already met, and if so queues
// the link: links are made after all files are written, when the first name surely exists.
func (c *copier) linked(st *unix.Stat_t, dstPath string) bool {
	if st.Nlink < 2 {
		return false
	}
	k := inode{st.Dev, st.Ino}
	if first, ok := c.firstNames[k]; ok {
		c.links = append(c.links, link{existing: first, name: dstPath})
		return true
	}
	c.firstNames[k] = dstPath
	return false
}

func (c *copier) copySymlink(dfd int, name string, st *unix.Stat_t, srcPath, dstPath string) error {
	target, err := readlinkAt(dfd, name, st.Size)
	if err != nil {
		return c.vanished(st, fmt.Errorf("copying %s: %w", srcPath, os.NewSyscallError("readlinkat", err)))
	}
	xattrs, err := pathXattrs(srcPath)
	if err != nil {
		return c.vanished(st, err)
	}
	if err := unix.Symlink(target, dstPath); err != nil {
		return fmt.Errorf("copying %s: creating %s: %w", srcPath, dstPath, os.NewSyscallError("symlink", err))
	}
	if err := applyMeta(dstPath, metaOf(st, xattrs), true); err != nil {
		return err
	}
	c.symlinks.Add(1)
	return nil
}

func (c *copier) copyFIFO(st *unix.Stat_t, srcPath, dstPath string) error {
	xattrs, err := pathXattrs(srcPath)
	if err != nil {
		return c.vanished(st, err)
	}
	if err := unix.Mkfifo(dstPath, 0o600); err != nil {
		return fmt.Errorf("copying %s: creating %s: %w", srcPath, dstPath, os.NewSyscallError("mkfifo", err))
	}
	if err := applyMeta(dstPath, metaOf(st, xattrs), false); err != nil {
		return err
	}
	c.files.Add(1)
	return nil
}

// finish makes the hard links, then applies directory metadata bottom-up, dst's root last.
func (c *copier) finish(ctx context.Context) error {
	for _, l := range c.links {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("linking %s: %w", l.name, err)
		}
		if err := unix.Linkat(unix.AT_FDCWD, l.existing, unix.AT_FDCWD, l.name, 0); err != nil {
			return fmt.Errorf("linking %s to %s: %w", l.name, l.existing, os.NewSyscallError("linkat", err))
		}
		c.hardlinks.Add(1)
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("setting metadata of %s: %w", d.path, err)
		}
		if err := applyMeta(d.path, d.m, false); err != nil {
			return err
		}
	}
	return nil
}

// reportProgress calls fn from one goroutine every progressInterval while bytes are copied;
// stop ends it and makes the final call, so fn never runs concurrently or after Copy returns.
func (c *copier) reportProgress(fn func(done, total int64), total int64) (stop func(done, total int64)) {
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		last := int64(-1)
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if d := c.done.Load(); d != last {
					fn(d, max(total, d))
					last = d
				}
			}
		}
	}()
	return func(done, total int64) {
		close(quit)
		<-exited
		fn(done, total)
	}
}

// openDir opens name (relative to dirfd) as a directory, refusing a symlink. O_NOATIME keeps a
// snapshot from touching the source's access times.
func openDir(dirfd int, name, path string) (*os.File, error) {
	fd, err := openNoATime(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openFile opens a regular file for reading and returns the stat of what was opened. O_NONBLOCK
// keeps the open from hanging if the name was swapped for a FIFO since it was stat'ed.
func openFile(dirfd int, name, path string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openNoATime(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return -1, st, fmt.Errorf("copying %s: %w", path, os.NewSyscallError("openat", err))
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, fmt.Errorf("copying %s: %w", path, os.NewSyscallError("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, st, fmt.Errorf("copying %s: it stopped being a regular file during the copy", path)
	}
	return fd, st, nil
}

func openNoATime(dirfd int, name string, flags int) (int, error) {
	fd, err := ignoringEINTR(func() (int, error) { return unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0) })
	if errors.Is(err, unix.EPERM) {
		// O_NOATIME needs ownership or CAP_FOWNER; without them, atimes may move.
		fd, err = ignoringEINTR(func() (int, error) { return unix.Openat(dirfd, name, flags, 0) })
	}
	return fd, err
}

// eachName calls fn for every entry of dir, refusing names that could address anything but
// an entry of dir.
func eachName(dir *os.File, path string, fn func(name string) error) error {
	for {
		// In batches, so that directories with millions of entries need little memory.
		names, err := dir.Readdirnames(1024)
		for _, name := range names {
			if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
				return fmt.Errorf("reading directory %s: refusing entry name %q", path, name)
			}
			if err := fn(name); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading directory %s: %w", path, err)
		}
	}
}

func readlinkAt(dfd int, name string, size int64) (string, error) {
	// st_size is the target's length on most filesystems, but 0 on some (procfs).
	buf := make([]byte, max(size+1, 256))
	for {
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// ignoringEINTR retries fn when a signal interrupts it, as package os does: Go installs its
// handlers with SA_RESTART, but some filesystems (FUSE, NFS) still return EINTR.
func ignoringEINTR[T any](fn func() (T, error)) (T, error) {
	for {
		v, err := fn()
		if err != unix.EINTR {
			return v, err
		}
	}
}
