package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"stork.dev/stork/backup/engine/repo"
)

// VerifyOptions tune a verification.
type VerifyOptions struct {
	// Ignore names entries of the target's root that are not the backup's and not a problem
	// (a file system's lost+found).
	Ignore []string
	// Progress, if set, is called about every 200ms and at the end.
	Progress func(Progress)
}

// VerifyReport is what a verification found.
type VerifyReport struct {
	// Files and Bytes compared with the backup (every regular file, every byte).
	Files, Bytes int64
	// Entries checked: files, directories, links and fifos.
	Entries int64
	// Problems, at most maxProblems of them, each naming a path; ProblemCount counts all.
	Problems     []string
	ProblemCount int
}

const maxProblems = 20

// Verify compares the tree at target with a snapshot, entry by entry: every entry of the
// snapshot must be there with its type, permission bits, modification time and (as root)
// owner; every regular file is read back and cut where the backup cut it into chunks, and
// each piece must hash (the repository's keyed hash) to the chunk ID recorded at backup time;
// symlinks must point where they did and hard links share their file's inode; and nothing may
// be there that the snapshot does not have. The chunk IDs in the snapshot's trees are the
// checksum manifest: they were computed from the source's bytes when it was read, so a restore
// that wrote anything else (a bug, a damaged disk, a store serving other data) is caught, and
// the report names each path that differs.
//
// Files are read with the page cache dropped first where the kernel allows it, so what is
// compared is what the disk holds, not what the restore left in memory.
func Verify(ctx context.Context, r *repo.Repository, snap repo.ID, target string, opts VerifyOptions) (*VerifyReport, error) {
	s, err := r.CachedSnapshot(ctx, snap)
	if err != nil {
		return nil, err
	}
	v := &verifier{r: r, root: target, rep: &VerifyReport{}, progress: &progress{}, root0: os.Geteuid() == 0}
	if opts.Progress != nil {
		walker := &restorer{r: r}
		if err := walker.walk(ctx, s.Tree, "", func(_ string, n *Node) error {
			if n.Type == TypeFile {
				v.progress.filesTotal.Add(1)
				v.progress.bytesTotal.Add(n.Size)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	stop := v.progress.report(opts.Progress)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)))
	v.files = g
	err = v.dir(gctx, s.Tree, "", opts.Ignore)
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(v.rep.Problems)
	return v.rep, nil
}

type verifier struct {
	r        *repo.Repository
	root     string
	root0    bool // running as root: owners were restored and are checked
	files    *errgroup.Group
	progress *progress

	mu  sync.Mutex
	rep *VerifyReport
}

func (v *verifier) problem(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rep.ProblemCount++
	if len(v.rep.Problems) < maxProblems {
		v.rep.Problems = append(v.rep.Problems, fmt.Sprintf(format, args...))
	}
}

func (v *verifier) count(entries, files, bytes int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rep.Entries += entries
	v.rep.Files += files
	v.rep.Bytes += bytes
}

// dir checks one directory of the snapshot against its place under the target.
func (v *verifier) dir(ctx context.Context, id repo.ID, rel string, ignore []string) error {
	t, err := loadTree(ctx, v.r, id)
	if err != nil {
		return err
	}
	p := filepath.Join(v.root, filepath.FromSlash(rel))
	names, err := readNames(p)
	if err != nil {
		v.problem("%s: cannot list the restored directory: %v", show(rel), err)
		return nil
	}
	for _, name := range names {
		if t.find(name) == nil && !(rel == "" && slices.Contains(ignore, name)) {
			v.problem("%s: is not in the backup", path.Join(rel, name))
		}
	}
	for i := range t.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := &t.Nodes[i]
		relPath := path.Join(rel, n.Name)
		if _, found := slices.BinarySearch(names, n.Name); !found {
			v.problem("%s: missing from the restored volume", relPath)
			continue
		}
		if !v.entry(relPath, n) {
			continue
		}
		switch n.Type {
		case TypeDir:
			if err := v.dir(ctx, *n.Subtree, relPath, nil); err != nil {
				return err
			}
		case TypeFile:
			v.files.Go(func() error { return v.file(ctx, relPath, n) })
		}
	}
	return nil
}

func show(rel string) string {
	if rel == "" {
		return "/"
	}
	return rel
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// entry checks an entry's type and metadata; false when it is not what the backup holds, so
// that its content is not compared.
func (v *verifier) entry(rel string, n *Node) bool {
	p := filepath.Join(v.root, filepath.FromSlash(rel))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		v.problem("%s: %v", rel, err)
		return false
	}
	v.count(1, 0, 0)
	want := map[string]uint32{TypeFile: unix.S_IFREG, TypeHardlink: unix.S_IFREG, TypeDir: unix.S_IFDIR,
		TypeSymlink: unix.S_IFLNK, TypeFifo: unix.S_IFIFO}[n.Type]
	if st.Mode&unix.S_IFMT != want {
		v.problem("%s: is not a %s as in the backup", rel, n.Type)
		return false
	}
	ok := true
	switch n.Type {
	case TypeSymlink:
		if target, err := os.Readlink(p); err != nil || target != n.LinkTarget {
			v.problem("%s: the symlink points to %q, the backup's to %q", rel, target, n.LinkTarget)
			ok = false
		}
	case TypeHardlink:
		var first unix.Stat_t
		if err := unix.Lstat(filepath.Join(v.root, filepath.FromSlash(n.LinkTarget)), &first); err != nil || first.Ino != st.Ino || first.Dev != st.Dev {
			v.problem("%s: is not a hard link of %s as in the backup", rel, n.LinkTarget)
		}
		return false // its content is its first name's
	}
	if n.Type != TypeSymlink && st.Mode&0o7777 != n.Mode&0o7777 {
		v.problem("%s: mode %04o, the backup's %04o", rel, st.Mode&0o7777, n.Mode&0o7777)
		ok = false
	}
	if v.root0 && (st.Uid != n.UID || st.Gid != n.GID) {
		v.problem("%s: owner %d:%d, the backup's %d:%d", rel, st.Uid, st.Gid, n.UID, n.GID)
		ok = false
	}
	if n.Type != TypeDir && !timeOf(st.Mtim).Equal(n.MTime) {
		// Directories' times change as entries are made; those of files do not.
		v.problem("%s: modified %s, the backup's %s", rel, timeOf(st.Mtim).Format(time.RFC3339Nano), n.MTime.Format(time.RFC3339Nano))
		ok = false
	}
	if n.Type == TypeFile && st.Size != n.Size {
		v.problem("%s: %d bytes, the backup's %d", rel, st.Size, n.Size)
		ok = false
	}
	return ok
}

// file reads a regular file back and compares it, chunk by chunk, with the backup's chunk IDs.
func (v *verifier) file(ctx context.Context, rel string, n *Node) error {
	p := filepath.Join(v.root, filepath.FromSlash(rel))
	f, err := openFile(p, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		v.problem("%s: %v", rel, err)
		return nil
	}
	defer f.Close()
	// Written pages must reach the disk before they can be dropped from the cache.
	_ = unix.Fdatasync(int(f.Fd()))
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	var buf []byte
	var off int64
	for _, id := range n.Content {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, e, ok := v.r.Lookup(id)
		if !ok {
			return fmt.Errorf("%s: chunk %s is not in the repository's index", rel, id)
		}
		buf = slices.Grow(buf[:0], int(e.RawLength))[:e.RawLength]
		if _, err := io.ReadFull(f, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				v.problem("%s: ends at byte %d, before the backup's %d", rel, off, n.Size)
				return nil
			}
			v.problem("%s: reading at byte %d: %v", rel, off, err)
			return nil
		}
		if v.r.BlobID(buf) != id {
			v.problem("%s: bytes %d to %d differ from the backup", rel, off, off+int64(len(buf)))
			return nil
		}
		off += int64(len(buf))
		v.progress.bytesDone.Add(int64(len(buf)))
	}
	v.progress.files.Add(1)
	v.count(0, 1, off)
	return nil
}

// Err is the report as an error naming the first problems, nil when there are none.
func (rep *VerifyReport) Err() error {
	if rep.ProblemCount == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d differences from the backup", rep.ProblemCount)
	if rep.ProblemCount == 1 {
		msg = "1 difference from the backup"
	}
	for i, p := range rep.Problems {
		if i == 5 {
			msg += fmt.Sprintf("; and %d more", rep.ProblemCount-5)
			break
		}
		msg += "; " + p
	}
	return errors.New(msg)
}
