package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc

	"stork.dev/stork/backup/engine/repo"
)

// BackupOptions tune a backup.
type BackupOptions struct {
	// Parent is a previous snapshot of the same tree, or of an earlier copy of it: files whose
	// path, size, mtime, mode and owner match its entries are taken from it without being
	// read (see unchanged). If the tree the parent was made from is still on disk, is another
	// directory and shares blocks with this one (reflink snapshots on XFS or btrfs), a changed
	// file is read only where its blocks are no longer the parent's (see extents.go).
	Parent *repo.ID
	// StrictChangeDetection reads every file, even one whose metadata matches the parent's
	// entry (its chunks are still stored once): for trees whose writers may change a file's
	// content while keeping its size and setting its mtime back.
	StrictChangeDetection bool
	// Tags to record in the snapshot.
	Tags map[string]string
	// Workers bounds the files read and chunks encoded at once; default GOMAXPROCS.
	Workers int
	// Progress, if set, is called about every 200ms and at the end.
	Progress func(Progress)
	// Exclude, if set, leaves out the entries (and all below them) whose slash-separated path
	// relative to the tree's root it returns true for, such as a file system's lost+found.
	Exclude func(rel string) bool
	// Prescan, if set, is a prescan of the tree started while the repository was being
	// opened (StartPrescan): the backup stops it and takes the listings it made.
	Prescan *Prescan
}

// Backup stores the tree under dir in the repository and returns the new snapshot's ID. The
// snapshot is written last, after every pack and index: a backup that fails or is killed
// leaves no snapshot, and what it uploaded is reused by the next one.
//
// The work is split by role, as restic's archiver is: the tree saver (tree_saver.go) walks
// directories and stores each as a tree blob; the file saver (file_saver.go) reads and chunks
// files, or takes them unchanged from the parent; the blob saver (blob_saver.go) encodes
// chunks in parallel into the repository's packs.
func Backup(ctx context.Context, r *repo.Repository, dir string, opts BackupOptions) (repo.ID, *repo.Snapshot, error) {
	start := time.Now()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return repo.ID{}, nil, err
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return repo.ID{}, nil, fmt.Errorf("backing up %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return repo.ID{}, nil, fmt.Errorf("backing up %s: not a directory", dir)
	}
	a, err := newArchiver(r, abs, opts)
	if err != nil {
		return repo.ID{}, nil, err
	}
	// The lock makes a concurrent prune wait for this backup, or this backup see its marks.
	lock, err := r.Lock(ctx, repo.BackupLock)
	if err != nil {
		return repo.ID{}, nil, err
	}
	defer func() { _ = lock.Release(ctx) }()
	parentSnap, parentTree, err := loadParent(ctx, r, opts.Parent)
	if err != nil {
		return repo.ID{}, nil, err
	}
	// The totals for progress are counted alongside, on what is usually an idle core: the
	// backup itself does not need them. With a parent, its totals stand in for them instead:
	// the scan lstats every file a second time, a quarter of the CPU of a backup that reads
	// nothing (a million unchanged files), and a scheduled backup's tree is mostly its parent's.
	// The last report has the exact totals either way.
	scanCtx, cancelScan := context.WithCancel(ctx)
	scanned := make(chan struct{})
	switch {
	case opts.Progress != nil && parentSnap != nil:
		a.filesTotal.Store(parentSnap.Summary.Files)
		a.bytesTotal.Store(parentSnap.Summary.Bytes)
		a.estimated = true
		close(scanned)
	case opts.Progress != nil:
		go func() { defer close(scanned); a.scan(scanCtx, abs) }()
	default:
		close(scanned)
	}
	defer func() { cancelScan(); <-scanned }()
	// Packs in flight: each upload to a cloud store holds a 5 MiB part buffer; to a local
	// directory it only waits for an fsync, and more of them overlap better (the dataset of
	// docs/performance.md: 6.55 → 6.14 s, median of 3, with 8 instead of 4).
	uploaders := 4
	if r.Store().Local() {
		uploaders = 8
	}
	a.w = r.NewWriter(ctx, uploaders)
	a.w.HoldLock(lock)
	stop := a.report(opts.Progress)
	var prevRoot *Node
	if parentTree != nil {
		prevRoot = parentTree.Root
	}
	opts.Prescan.Stop()
	if opts.Prescan != nil && opts.Prescan.root != abs {
		a.opts.Prescan = nil // of another tree
	}
	rootMeta, err := nodeFromPath(abs, ".", prevRoot)
	if err != nil {
		stop()
		return repo.ID{}, nil, err
	}
	a.parentSource = parentSource(parentSnap, abs, rootMeta.Device, opts)
	var parentRoot *repo.ID
	if parentSnap != nil {
		parentRoot = &parentSnap.Tree
	}
	rootID, err := a.saveDir(ctx, abs, "", parentTree, parentRoot, &rootMeta)
	if err == nil {
		<-scanned // for exact totals in the last progress report
		if a.estimated {
			a.filesTotal.Store(a.files.Load())
			a.bytesTotal.Store(a.bytesDone.Load())
		}
	}
	stop()
	if err != nil {
		_, _ = a.w.Flush() // keep what was uploaded for the next backup
		return repo.ID{}, nil, err
	}
	ws, err := a.w.Flush()
	if err != nil {
		return repo.ID{}, nil, err
	}
	snap := a.snapshot(start, rootID, ws)
	if err := lock.Valid(); err != nil {
		return repo.ID{}, nil, err
	}
	id, err := r.SaveSnapshot(ctx, snap)
	if err != nil {
		return repo.ID{}, nil, err
	}
	return id, snap, nil
}

type archiver struct {
	r       *repo.Repository
	w       *repo.Writer
	opts    BackupOptions
	root    string
	chunker repo.ChunkerParams

	// parentSource is the directory the parent snapshot was made from, if it is still there
	// and is not root: where changed files may share blocks with their parent copies.
	parentSource string

	progress
	dirs, reused atomic.Int64
	// bytesAll is the size of every file in the snapshot, read or reused.
	bytesAll atomic.Int64

	// hardlinks maps (device, inode) of files with several links to the first path met.
	hardlinksMu sync.Mutex
	hardlinks   map[[2]uint64]string

	// dirSlots and fileSlots bound the directories walked and the files read at once.
	dirSlots, fileSlots chan struct{}

	// chunkSlots bounds chunks held in memory while being encoded.
	chunkSlots chan struct{}
	// chunkers and chunkBufs are reused from file to file: a chunker's scan buffer is twice
	// the maximum chunk size, and allocating it per file dominated backups of small files.
	chunkers, chunkBufs sync.Pool
}

// newArchiver sets up a backup of the tree at abs: the slots that bound its parallelism and
// the pools of chunkers and chunk buffers its file savers share.
func newArchiver(r *repo.Repository, abs string, opts BackupOptions) (*archiver, error) {
	if opts.Workers < 1 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	a := &archiver{r: r, opts: opts, root: abs, hardlinks: map[[2]uint64]string{},
		chunkSlots: make(chan struct{}, 2*opts.Workers), dirSlots: make(chan struct{}, opts.Workers),
		fileSlots: make(chan struct{}, opts.Workers)}
	a.chunker = r.Config().Chunker
	copts := &chunkers.ChunkerOpts{MinSize: a.chunker.MinSize, NormalSize: a.chunker.AvgSize, MaxSize: a.chunker.MaxSize, Key: a.chunker.Key}
	c, err := chunkers.NewChunker(a.chunker.Algorithm, nil, copts)
	if err != nil {
		return nil, fmt.Errorf("chunker %s: %w", a.chunker.Algorithm, err)
	}
	a.chunkers.Put(c)
	a.chunkers.New = func() any {
		c, _ := chunkers.NewChunker(a.chunker.Algorithm, nil, copts) // the options were accepted above
		return c
	}
	a.chunkBufs.New = func() any { b := make([]byte, 0, a.chunker.MaxSize); return &b }
	return a, nil
}

// loadParent loads the parent snapshot and its root tree, if there is one.
func loadParent(ctx context.Context, r *repo.Repository, parent *repo.ID) (*repo.Snapshot, *Tree, error) {
	if parent == nil {
		return nil, nil, nil
	}
	ps, err := r.CachedSnapshot(ctx, *parent)
	if err != nil {
		return nil, nil, fmt.Errorf("loading parent snapshot: %w", err)
	}
	t, err := loadTree(ctx, r, ps.Tree)
	if err != nil {
		return nil, nil, fmt.Errorf("loading parent snapshot: %w", err)
	}
	return ps, t, nil
}

// parentSource is the directory the parent snapshot ps was made from, if extents may be
// compared with it: it still is a directory on the file system of root (device dev), and is
// not root itself (a live tree backed up again, whose files cannot be compared with
// themselves).
func parentSource(ps *repo.Snapshot, root string, dev uint64, opts BackupOptions) string {
	if ps == nil || opts.StrictChangeDetection || len(ps.Paths) != 1 || filepath.Clean(ps.Paths[0]) == root {
		return ""
	}
	var st unix.Stat_t
	if unix.Stat(ps.Paths[0], &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Dev != dev {
		return ""
	}
	return ps.Paths[0]
}

// snapshot is the manifest of the finished backup.
func (a *archiver) snapshot(start time.Time, root repo.ID, ws repo.WriterStats) *repo.Snapshot {
	return &repo.Snapshot{
		Time:   start.UTC(),
		Tree:   root,
		Paths:  []string{a.root},
		Parent: a.opts.Parent,
		Tags:   a.opts.Tags,
		Summary: repo.SnapshotSummary{
			Files: a.files.Load(), Dirs: a.dirs.Load(), Bytes: a.bytesAll.Load(), FilesReused: a.reused.Load(),
			BytesReused: a.bytesSkipped.Load(),
			BlobsAdded:  ws.BlobsAdded, BytesAdded: ws.BytesAdded, BytesStored: ws.BytesStored,
			DurationMS: time.Since(start).Milliseconds(),
		},
	}
}

// scan counts files and bytes for progress totals, each hard-linked file once. Errors are left
// to the backup, which meets the same files.
func (a *archiver) scan(ctx context.Context, root string) {
	seen := map[[2]uint64]bool{}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if a.opts.Exclude != nil && p != root {
			if rel, rerr := filepath.Rel(root, p); rerr == nil && a.opts.Exclude(filepath.ToSlash(rel)) {
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		a.filesTotal.Add(1)
		a.bytesTotal.Add(info.Size())
		return nil
	})
}
