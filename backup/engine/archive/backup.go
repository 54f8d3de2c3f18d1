package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"stork.dev/stork/backup/engine/repo"
)

// BackupOptions tune a backup.
type BackupOptions struct {
	// Parent is a previous snapshot of the same tree: files whose size, mtime, ctime and
	// inode are unchanged are taken from it without being read.
	Parent *repo.ID
	// Tags to record in the snapshot.
	Tags map[string]string
	// Workers bounds the files read and chunks encoded at once; default GOMAXPROCS.
	Workers int
	// Progress, if set, is called about every 200ms and at the end.
	Progress func(Progress)
	// Exclude, if set, leaves out the entries (and all below them) whose slash-separated path
	// relative to the tree's root it returns true for, such as a file system's lost+found.
	Exclude func(rel string) bool
}

// Backup stores the tree under dir in the repository and returns the new snapshot's ID. The
// snapshot is written last, after every pack and index: a backup that fails or is killed
// leaves no snapshot, and what it uploaded is reused by the next one.
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
		return repo.ID{}, nil, fmt.Errorf("chunker %s: %w", a.chunker.Algorithm, err)
	}
	a.chunkers.Put(c)
	a.chunkers.New = func() any {
		c, _ := chunkers.NewChunker(a.chunker.Algorithm, nil, copts) // the options were accepted above
		return c
	}
	a.chunkBufs.New = func() any { b := make([]byte, 0, a.chunker.MaxSize); return &b }
	// The lock makes a concurrent prune wait for this backup, or this backup see its marks.
	lock, err := r.Lock(ctx, repo.BackupLock)
	if err != nil {
		return repo.ID{}, nil, err
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	var parentTree *Tree
	if opts.Parent != nil {
		ps, err := r.LoadSnapshot(ctx, *opts.Parent)
		if err != nil {
			return repo.ID{}, nil, fmt.Errorf("loading parent snapshot: %w", err)
		}
		if parentTree, err = loadTree(ctx, r, ps.Tree); err != nil {
			return repo.ID{}, nil, fmt.Errorf("loading parent snapshot: %w", err)
		}
	}
	// The totals for progress are counted alongside, on what is usually an idle core: the
	// backup itself does not need them.
	scanCtx, cancelScan := context.WithCancel(ctx)
	scanned := make(chan struct{})
	if opts.Progress != nil {
		go func() { defer close(scanned); a.scan(scanCtx, abs) }()
	} else {
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
	rootMeta, err := nodeFromPath(abs, ".")
	if err != nil {
		stop()
		return repo.ID{}, nil, err
	}
	rootID, err := a.saveDir(ctx, abs, "", parentTree, &rootMeta)
	if err == nil {
		<-scanned // for exact totals in the last progress report
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
	snap := &repo.Snapshot{
		Time:   start.UTC(),
		Tree:   rootID,
		Paths:  []string{abs},
		Parent: opts.Parent,
		Tags:   opts.Tags,
		Summary: repo.SnapshotSummary{
			Files: a.files.Load(), Dirs: a.dirs.Load(), Bytes: a.bytesAll.Load(), FilesReused: a.reused.Load(),
			BlobsAdded: ws.BlobsAdded, BytesAdded: ws.BytesAdded, BytesStored: ws.BytesStored,
			DurationMS: time.Since(start).Milliseconds(),
		},
	}
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

// saveDir stores one directory: its subdirectories and files in parallel (within the bounds of
// dirSlots and fileSlots, shared by the whole backup), then its tree blob.
func (a *archiver) saveDir(ctx context.Context, abs, rel string, parent *Tree, self *Node) (repo.ID, error) {
	entries, err := os.ReadDir(abs)
	if err != nil {
		return repo.ID{}, fmt.Errorf("reading directory %s: %w", abs, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	tree := &Tree{Nodes: make([]Node, 0, len(entries)), Root: self}
	for _, e := range entries {
		if a.opts.Exclude != nil && a.opts.Exclude(path.Join(rel, e.Name())) {
			continue
		}
		node, err := nodeFromPath(filepath.Join(abs, e.Name()), e.Name())
		if err != nil {
			return repo.ID{}, err
		}
		tree.Nodes = append(tree.Nodes, node)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range tree.Nodes {
		n := &tree.Nodes[i]
		p := filepath.Join(abs, n.Name)
		relPath := path.Join(rel, n.Name)
		prev := parent.find(n.Name)
		switch n.Type {
		case TypeDir:
			var prevTree *repo.ID
			if prev != nil && prev.Type == TypeDir {
				prevTree = prev.Subtree
			}
			sub := func(ctx context.Context) error {
				var sub *Tree
				if prevTree != nil {
					var err error
					if sub, err = loadTree(ctx, a.r, *prevTree); err != nil {
						return err
					}
				}
				id, err := a.saveDir(ctx, p, relPath, sub, nil)
				n.Subtree = &id
				a.dirs.Add(1)
				return err
			}
			// In a goroutine when a slot is free, else right here: waiting for a slot
			// while holding one could deadlock.
			select {
			case a.dirSlots <- struct{}{}:
				g.Go(func() error { defer func() { <-a.dirSlots }(); return sub(gctx) })
			default:
				if err := sub(gctx); err != nil {
					_ = g.Wait()
					return repo.ID{}, err
				}
			}
		case TypeFile:
			if first, ok := a.hardlinkOf(*n, relPath); ok {
				n.Type, n.LinkTarget, n.Size = TypeHardlink, first, 0
				continue
			}
			if prev != nil && prev.Type == TypeFile && unchanged(prev, n) && a.allIndexed(prev.Content) {
				n.Content = prev.Content
				a.reused.Add(1)
				a.files.Add(1)
				a.bytesDone.Add(n.Size)
				continue
			}
			if n.Size == 0 {
				a.files.Add(1)
				continue
			}
			select {
			case a.fileSlots <- struct{}{}:
			case <-gctx.Done():
				return repo.ID{}, g.Wait()
			}
			g.Go(func() error {
				defer func() { <-a.fileSlots }()
				content, size, err := a.saveFile(gctx, p)
				if err != nil {
					return err
				}
				n.Content, n.Size = content, size
				a.files.Add(1)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return repo.ID{}, err
	}
	for _, n := range tree.Nodes {
		if n.Type == TypeFile {
			a.bytesAll.Add(n.Size)
		}
	}
	data, err := json.Marshal(tree)
	if err != nil {
		return repo.ID{}, err
	}
	return a.w.Add(repo.TreeBlob, data)
}

// unchanged says whether a file can be taken from the parent snapshot without reading it.
func unchanged(prev, cur *Node) bool {
	return prev.Size == cur.Size && prev.MTime.Equal(cur.MTime) && prev.CTime.Equal(cur.CTime) &&
		prev.Inode == cur.Inode && prev.Device == cur.Device && len(prev.Content) > 0
}

// allIndexed says whether every chunk of a parent's file may be reused: a chunk that prune
// marked for deletion, or that a damaged index lost, is not, and the file is read again.
func (a *archiver) allIndexed(content []repo.ID) bool {
	for _, id := range content {
		if !a.r.Has(id) {
			return false
		}
	}
	return true
}

// hardlinkOf returns the first path of a file with several links, if met already. Directories
// are walked in parallel, so which name is first varies; restore makes hard links last.
func (a *archiver) hardlinkOf(n Node, rel string) (string, bool) {
	if n.Inode == 0 || n.links < 2 {
		return "", false
	}
	a.hardlinksMu.Lock()
	defer a.hardlinksMu.Unlock()
	key := [2]uint64{n.Device, n.Inode}
	if first, ok := a.hardlinks[key]; ok {
		return first, true
	}
	a.hardlinks[key] = rel
	return "", false
}

// saveFile chunks a file and stores its chunks, encoding several at once: the chunker reads
// sequentially, and each chunk is hashed, compressed, encrypted and packed in its own goroutine.
// It returns the chunks and the bytes read, which are what the snapshot records as the file's
// size even if the file changed since it was listed.
func (a *archiver) saveFile(ctx context.Context, p string) ([]repo.ID, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	// FastCDC never cuts below its minimum size, so a file that small is one chunk: it is read
	// in one go, with no chunker.
	sbuf := a.chunkBufs.Get().(*[]byte)
	defer a.chunkBufs.Put(sbuf)
	small := (*sbuf)[:a.chunker.MinSize+1]
	n, err := io.ReadFull(f, small)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		if n == 0 {
			return nil, 0, nil
		}
		id, err := a.w.Add(repo.DataBlob, small[:n])
		a.bytesDone.Add(int64(n))
		if err != nil {
			return nil, 0, fmt.Errorf("storing %s: %w", p, err)
		}
		return []repo.ID{id}, int64(n), nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", p, err)
	}
	c := a.chunkers.Get().(*chunkers.Chunker)
	defer a.chunkers.Put(c)
	c.Reset(io.MultiReader(bytes.NewReader(small), f))
	// Each chunk's ID lands in its own cell, so the order of content survives parallel encoding.
	var cells []*repo.ID
	var size int64
	g, gctx := errgroup.WithContext(ctx)
	for {
		chunk, err := c.Next()
		if err != nil && !errors.Is(err, io.EOF) {
			_ = g.Wait()
			return nil, 0, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(chunk) > 0 {
			select {
			case a.chunkSlots <- struct{}{}:
			case <-gctx.Done():
				return nil, 0, g.Wait()
			}
			buf := a.chunkBufs.Get().(*[]byte)
			data := append((*buf)[:0], chunk...) // the chunker reuses its buffer
			*buf = data
			cell := new(repo.ID)
			cells = append(cells, cell)
			size += int64(len(data))
			g.Go(func() error {
				defer func() { a.chunkBufs.Put(buf); <-a.chunkSlots }()
				id, err := a.w.Add(repo.DataBlob, data)
				*cell = id
				a.bytesDone.Add(int64(len(data)))
				return err
			})
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if err := g.Wait(); err != nil {
		return nil, 0, fmt.Errorf("storing %s: %w", p, err)
	}
	ids := make([]repo.ID, len(cells))
	for i, c := range cells {
		ids[i] = *c
	}
	return ids, size, nil
}

// nodeFromPath makes a node from a file's metadata (without content).
func nodeFromPath(p, name string) (Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return Node{}, fmt.Errorf("reading metadata of %s: %w", p, err)
	}
	n := Node{
		Name:   name,
		Mode:   st.Mode & 0o7777,
		UID:    st.Uid,
		GID:    st.Gid,
		MTime:  time.Unix(st.Mtim.Unix()).UTC(),
		CTime:  time.Unix(st.Ctim.Unix()).UTC(),
		Inode:  st.Ino,
		Device: st.Dev,
		links:  uint64(st.Nlink),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Type, n.Size = TypeFile, st.Size
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
	xattrs, err := readXattrs(p)
	if err != nil {
		return Node{}, err
	}
	n.Xattrs = xattrs
	return n, nil
}

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
