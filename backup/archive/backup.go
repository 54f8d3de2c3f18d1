package archive

import (
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
	"sync/atomic"
	"syscall"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"stork.dev/stork/backup/repo"
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
		chunkSlots: make(chan struct{}, 2*opts.Workers)}
	a.chunker = r.Config().Chunker
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
	if err := a.scan(abs); err != nil {
		return repo.ID{}, nil, err
	}
	a.w = r.NewWriter(ctx, 2)
	a.w.HoldLock(lock)
	stop := a.report(opts.Progress)
	rootMeta, err := nodeFromPath(abs, ".")
	if err != nil {
		return repo.ID{}, nil, err
	}
	rootID, err := a.saveDir(ctx, abs, "", parentTree, &rootMeta)
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
			Files: a.files.Load(), Dirs: a.dirs.Load(), Bytes: a.bytesTotal, FilesReused: a.reused.Load(),
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

	// hardlinks maps (device, inode) of files with several links to the first path met. The
	// directory walk is sequential, so it needs no lock.
	hardlinks map[[2]uint64]string

	// chunkSlots bounds chunks held in memory while being encoded.
	chunkSlots chan struct{}
}

// scan counts files and bytes for progress totals, each hard-linked file once.
func (a *archiver) scan(root string) error {
	seen := map[[2]uint64]bool{}
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("scanning %s: %w", p, err)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("scanning %s: %w", p, err)
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		a.filesTotal++
		a.bytesTotal += info.Size()
		return nil
	})
}

// saveDir stores one directory: its files in parallel, its subdirectories depth-first, then its
// tree blob.
func (a *archiver) saveDir(ctx context.Context, abs, rel string, parent *Tree, self *Node) (repo.ID, error) {
	entries, err := os.ReadDir(abs)
	if err != nil {
		return repo.ID{}, fmt.Errorf("reading directory %s: %w", abs, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	tree := &Tree{Nodes: make([]Node, 0, len(entries)), Root: self}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(abs, name)
		relPath := path.Join(rel, name)
		node, err := nodeFromPath(p, name)
		if err != nil {
			return repo.ID{}, err
		}
		prev := parent.find(name)
		switch node.Type {
		case TypeDir:
			var sub *Tree
			if prev != nil && prev.Type == TypeDir {
				if sub, err = loadTree(ctx, a.r, *prev.Subtree); err != nil {
					return repo.ID{}, err
				}
			}
			id, err := a.saveDir(ctx, p, relPath, sub, nil)
			if err != nil {
				return repo.ID{}, err
			}
			node.Subtree = &id
			a.dirs.Add(1)
		case TypeFile:
			if first, ok := a.hardlinkOf(node, relPath); ok {
				node.Type, node.LinkTarget, node.Size = TypeHardlink, first, 0
				break
			}
			if prev != nil && prev.Type == TypeFile && unchanged(prev, &node) && a.allIndexed(prev.Content) {
				node.Content = prev.Content
				a.reused.Add(1)
				a.files.Add(1)
				a.bytesDone.Add(node.Size)
				break
			}
		}
		tree.Nodes = append(tree.Nodes, node)
	}
	// Read the files that need reading, in parallel.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.Workers)
	for i := range tree.Nodes {
		n := &tree.Nodes[i]
		switch {
		case n.Type != TypeFile || n.Content != nil: // not a file, or reused from the parent
			continue
		case n.Size == 0:
			a.files.Add(1)
			continue
		}
		p := filepath.Join(abs, n.Name)
		g.Go(func() error {
			content, err := a.saveFile(gctx, p)
			if err != nil {
				return err
			}
			n.Content = content
			a.files.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return repo.ID{}, err
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

// hardlinkOf returns the first path of a file with several links, if met already.
func (a *archiver) hardlinkOf(n Node, rel string) (string, bool) {
	if n.Inode == 0 {
		return "", false
	}
	key := [2]uint64{n.Device, n.Inode}
	if first, ok := a.hardlinks[key]; ok {
		return first, true
	}
	if n.links > 1 {
		a.hardlinks[key] = rel
	}
	return "", false
}

// saveFile chunks a file and stores its chunks, encoding several at once: the chunker reads
// sequentially, and each chunk is hashed, compressed, encrypted and packed in its own goroutine.
func (a *archiver) saveFile(ctx context.Context, p string) ([]repo.ID, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	c, err := chunkers.NewChunker(a.chunker.Algorithm, f, &chunkers.ChunkerOpts{
		MinSize: a.chunker.MinSize, NormalSize: a.chunker.AvgSize, MaxSize: a.chunker.MaxSize, Key: a.chunker.Key,
	})
	if err != nil {
		return nil, fmt.Errorf("chunking %s: %w", p, err)
	}
	// Each chunk's ID lands in its own cell, so the order of content survives parallel encoding.
	var cells []*repo.ID
	g, gctx := errgroup.WithContext(ctx)
	for {
		chunk, err := c.Next()
		if err != nil && !errors.Is(err, io.EOF) {
			_ = g.Wait()
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(chunk) > 0 {
			select {
			case a.chunkSlots <- struct{}{}:
			case <-gctx.Done():
				return nil, g.Wait()
			}
			data := append([]byte(nil), chunk...) // the chunker reuses its buffer
			cell := new(repo.ID)
			cells = append(cells, cell)
			g.Go(func() error {
				defer func() { <-a.chunkSlots }()
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
		return nil, fmt.Errorf("storing %s: %w", p, err)
	}
	ids := make([]repo.ID, len(cells))
	for i, c := range cells {
		ids[i] = *c
	}
	return ids, nil
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
