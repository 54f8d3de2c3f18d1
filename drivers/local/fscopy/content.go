package fscopy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// copyFile copies the regular file open as src, described by st, to a new file at dstPath,
// and closes src.
func (c *copier) copyFile(ctx context.Context, src int, st *unix.Stat_t, srcPath, dstPath string) error {
	defer unix.Close(src)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("copying %s: %w", srcPath, err)
	}
	xattrs, err := fdXattrs(src, srcPath)
	if err != nil {
		return err
	}
	dst, err := ignoringEINTR(func() (int, error) {
		return unix.Open(dstPath, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	})
	if err != nil {
		return fmt.Errorf("copying %s: creating %s: %w", srcPath, dstPath, os.NewSyscallError("open", err))
	}
	reflinked, err := c.copyContent(ctx, src, dst, st.Size, srcPath)
	if cerr := unix.Close(dst); err == nil && cerr != nil {
		// Some filesystems (NFS) report write errors only here.
		err = fmt.Errorf("copying %s: closing %s: %w", srcPath, dstPath, os.NewSyscallError("close", cerr))
	}
	if err != nil {
		return err
	}
	if err := applyMeta(dstPath, metaOf(st, xattrs), false); err != nil {
		return err
	}
	c.files.Add(1)
	c.bytes.Add(st.Size)
	if reflinked {
		c.reflinked.Add(1)
	}
	return nil
}

// copyContent makes dst's content the first size bytes of src: cloned if the filesystem can
// share extents, else copied segment by data segment so that holes stay holes.
func (c *copier) copyContent(ctx context.Context, src, dst int, size int64, srcPath string) (reflinked bool, err error) {
	if size == 0 {
		return false, nil
	}
	err = unix.IoctlFileClone(dst, src)
	switch {
	case err == nil:
		c.done.Add(size)
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY):
		// No shared extents here (ext4, tmpfs, another filesystem, unaligned): copy instead.
	default:
		return false, fmt.Errorf("copying %s: %w", srcPath, os.NewSyscallError("ioctl FICLONE", err))
	}

	var copied int64
	cp := rangeCopier{c: c, src: src, dst: dst, useCopyFileRange: true}
	for off := int64(0); off < size; {
		data, err := unix.Seek(src, off, unix.SEEK_DATA)
		end := size
		switch {
		case errors.Is(err, unix.ENXIO):
			data = size // nothing but a hole up to the end
		case errors.Is(err, unix.EINVAL):
			data = off // the filesystem cannot tell holes: copy everything
		case err != nil:
			return false, fmt.Errorf("copying %s: %w", srcPath, os.NewSyscallError("lseek SEEK_DATA", err))
		default:
			end, err = unix.Seek(src, data, unix.SEEK_HOLE)
			if errors.Is(err, unix.ENXIO) {
				end = size // truncated since: the read stops short below
			} else if err != nil {
				return false, fmt.Errorf("copying %s: %w", srcPath, os.NewSyscallError("lseek SEEK_HOLE", err))
			}
		}
		if data >= size {
			break
		}
		end = min(end, size)
		n, err := cp.copyRange(ctx, data, end)
		copied += n
		if err != nil {
			return false, fmt.Errorf("copying %s: %w", srcPath, err)
		}
		if n < end-data {
			break // src shrank while it was copied
		}
		off = end
	}
	// Holes move no data but are part of what progress promised.
	c.done.Add(size - copied)
	// Extending the file to its size leaves a trailing hole a hole.
	if err := unix.Ftruncate(dst, size); err != nil {
		return false, fmt.Errorf("copying %s: %w", srcPath, os.NewSyscallError("ftruncate", err))
	}
	return false, nil
}

// rangeCopier copies byte ranges from one file to another at the same offsets.
type rangeCopier struct {
	c        *copier
	src, dst int
	// useCopyFileRange is cleared for the rest of the file when the kernel cannot
	// copy_file_range between these two files.
	useCopyFileRange bool
	buf              []byte
}

// copyRange copies [off, end) in pieces, stopping early at src's end, and returns how many
// bytes it copied.
func (r *rangeCopier) copyRange(ctx context.Context, off, end int64) (int64, error) {
	start := off
	for off < end {
		if err := ctx.Err(); err != nil {
			return off - start, err
		}
		n := min(end-off, chunkSize)
		if r.c.lim != nil {
			n = min(n, int64(r.c.lim.Burst()))
			if err := throttle(ctx, r.c.lim, int(n)); err != nil {
				return off - start, err
			}
		}
		var w int
		var err error
		if r.useCopyFileRange {
			roff, woff := off, off
			w, err = ignoringEINTR(func() (int, error) { return unix.CopyFileRange(r.src, &roff, r.dst, &woff, int(n), 0) })
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
				r.useCopyFileRange = false
			} else if err != nil {
				err = os.NewSyscallError("copy_file_range", err)
			}
		}
		if !r.useCopyFileRange {
			w, err = r.readWrite(off, int(n))
		}
		if err != nil {
			return off - start, err
		}
		if w == 0 {
			return off - start, nil // end of src
		}
		off += int64(w)
		r.c.done.Add(int64(w))
	}
	return off - start, nil
}

// readWrite copies up to n bytes at off through a buffer, for when the kernel cannot do it.
func (r *rangeCopier) readWrite(off int64, n int) (int, error) {
	if len(r.buf) < min(n, 1<<20) {
		r.buf = make([]byte, min(n, 1<<20))
	}
	buf := r.buf[:min(n, len(r.buf))]
	rn, err := ignoringEINTR(func() (int, error) { return unix.Pread(r.src, buf, off) })
	if err != nil {
		return 0, os.NewSyscallError("pread", err)
	}
	for w := 0; w < rn; {
		wn, err := ignoringEINTR(func() (int, error) { return unix.Pwrite(r.dst, buf[w:rn], off+int64(w)) })
		if err != nil {
			return 0, os.NewSyscallError("pwrite", err)
		}
		w += wn
	}
	return rn, nil
}

// throttle waits until lim allows n more bytes. Unlike lim.WaitN, it returns ctx's own error
// when a deadline is near rather than failing early with an error that does not wrap it.
func throttle(ctx context.Context, lim *rate.Limiter, n int) error {
	r := lim.ReserveN(time.Now(), n)
	if !r.OK() {
		return fmt.Errorf("rate limit: %d bytes exceed the burst of %d", n, lim.Burst())
	}
	d := r.Delay()
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}
