package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dirBackend is a directory used as a bucket, for file:// URLs. It is written here rather than
// taken from gocloud.dev/blob/fileblob because a backup repository needs three things fileblob
// does not give: a write-once put that holds across processes (fileblob checks for an existing
// key with stat then renames, guarded by an in-process mutex only — two processes initialising
// one repository would both succeed); durability (each object is fsynced, then linked into place
// and its directory fsynced, so a snapshot never survives a power cut that its packs did not);
// and speed (fileblob hashes every object with MD5 three times over and writes a sidecar file
// per object, which cost a quarter of a backup's CPU time in the measurements of
// docs/performance.md).
type dirBackend struct {
	root string
}

// tmpPrefix marks objects being written; listings skip them.
const tmpPrefix = ".tmp-"

func openDir(root string) (*dirBackend, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	removeStale(root, tmpPrefix)
	return &dirBackend{root: root}, nil
}

// staleAfter is when a staging file is taken to be left by a killed process: no object takes
// that long to stage.
const staleAfter = 24 * time.Hour

// removeStale removes staging files under dir older than staleAfter, best effort.
func removeStale(dir, prefix string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// path maps a key to a file, refusing keys that would leave the root.
func (d *dirBackend) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, tmpPrefix) {
			return "", fmt.Errorf("invalid object key %q", key)
		}
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (%v)", ErrNotFound, err)
	}
	return err
}

func (d *dirBackend) putNew(ctx context.Context, key string, data []byte) (bool, error) {
	f, err := d.tempFile()
	if err != nil {
		return false, err
	}
	defer discard(f)
	if _, err := f.Write(data); err != nil {
		return false, err
	}
	return d.putNewFile(ctx, key, f)
}

// tempFile stages an object in the directory itself, so that putNewFile links it into place.
func (d *dirBackend) tempFile() (*os.File, error) {
	return os.CreateTemp(d.root, tmpPrefix+"*")
}

// putNewFile makes the staged file durable and links it to key: link(2) fails if the name
// exists, an atomic create-if-absent, unlike rename(2).
func (d *dirBackend) putNewFile(_ context.Context, key string, f *os.File) (bool, error) {
	p, err := d.path(key)
	if err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		return false, err
	}
	// The file is on disk: drop its pages from the page cache. A backup writes its packs once
	// and seldom reads them back, and caching them would push out what the node's applications
	// had cached (the agent backs up volumes on the applications' nodes). It can save CPU as
	// well: on this VM, writing 1.6 GB of fsynced files took 2.5-3.5 s of system CPU when the
	// page cache grew by all of it, 0.55 s when each file's pages were dropped and reused
	// (docs/performance.md).
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	if err := os.Link(f.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, syncDir(dir)
}

// discard closes and removes a staging file.
func discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

func (d *dirBackend) get(_ context.Context, key string) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	return data, notFound(err)
}

func (d *dirBackend) getRange(_ context.Context, key string, offset int64, dst []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return notFound(err)
	}
	defer f.Close()
	n, err := f.ReadAt(dst, offset)
	if err == io.EOF && n < len(dst) {
		return fmt.Errorf("short read: %d of %d bytes", n, len(dst))
	}
	if err != nil && err != io.EOF {
		return err
	}
	return nil
}

// list walks the directories under prefix in key order.
func (d *dirBackend) list(_ context.Context, prefix string, fn func(Object) error) error {
	// Start at the deepest directory the prefix names completely.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		// Key order: a directory "a" sorts as "a/", after "a-b" and before "a0".
		sort.Slice(entries, func(i, j int) bool { return sortName(entries[i]) < sortName(entries[j]) })
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, tmpPrefix) || strings.HasSuffix(name, ".attrs") {
				continue // being written; or a sidecar of a directory fileblob wrote
			}
			p := filepath.Join(dir, name)
			rel, _ := filepath.Rel(d.root, p)
			key := filepath.ToSlash(rel)
			if e.IsDir() {
				if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
					if err := walk(p); err != nil {
						return err
					}
				}
				continue
			}
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listed
			}
			if err != nil {
				return err
			}
			if err := fn(Object{Key: key, Size: info.Size(), ModTime: info.ModTime()}); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(start)
}

func sortName(e fs.DirEntry) string {
	if e.IsDir() {
		return e.Name() + "/"
	}
	return e.Name()
}

func (d *dirBackend) delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	return notFound(os.Remove(p))
}

func (d *dirBackend) exists(_ context.Context, key string) (bool, error) {
	p, err := d.path(key)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (d *dirBackend) close() error { return nil }
