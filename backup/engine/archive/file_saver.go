package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"stork.dev/stork/backup/engine/repo"
)

// The file saver: a file is a hard link to one met before, unchanged since the parent snapshot
// (taken from it unread), empty, small (one chunk, read in one go), or chunked and its chunks
// handed to the blob saver.

// saveFileNode fills in the content of the file n (at p): at once when it needs no reading,
// else in a goroutine of g once a file slot is free. prev is its entry in the parent snapshot.
func (a *archiver) saveFileNode(ctx context.Context, g *errgroup.Group, n *Node, p, rel string, prev *Node) error {
	if first, ok := a.hardlinkOf(*n, rel); ok {
		n.Type, n.LinkTarget, n.Size = TypeHardlink, first, 0
		return nil
	}
	if !a.opts.StrictChangeDetection && prev != nil && prev.Type == TypeFile && unchanged(prev, n) && a.allIndexed(prev.Content) {
		n.Content = prev.Content
		a.reused.Add(1)
		a.files.Add(1)
		a.bytesDone.Add(n.Size)
		a.bytesSkipped.Add(n.Size)
		return nil
	}
	if n.Size == 0 {
		a.files.Add(1)
		return nil
	}
	if a.opts.StrictChangeDetection || prev == nil || prev.Type != TypeFile || len(prev.Content) == 0 {
		prev = nil
	}
	select {
	case a.fileSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.Go(func() error {
		defer func() { <-a.fileSlots }()
		content, size, err := a.saveFile(ctx, p, rel, n, prev)
		if err != nil {
			return err
		}
		n.Content, n.Size = content, size
		a.files.Add(1)
		return nil
	})
	return nil
}

// unchanged says whether a file can be taken from the parent snapshot without reading it: the
// same path (the caller matched it), size, modification time to the nanosecond, mode and owner.
//
// Inode, device and ctime are deliberately not compared (restic and kopia compare them, and so
// re-read everything here): Stork backs up snapshot copies and clones, not the live tree, so
// every file of every backup has a new inode, device and ctime, while the copies keep mtime to
// the nanosecond (the agent's fscopy sets it with utimensat, as cp -a and rsync -a do; CSI
// snapshots and clones keep it). For a file's content to change unseen, its writer must keep
// its size and then set its mtime back to the old value to the nanosecond: no ordinary write
// does that (every write sets mtime to the current time), only a deliberate utimensat or a
// tool told to preserve times while rewriting content in place. Users who cannot rule that
// out set StrictChangeDetection.
func unchanged(prev, cur *Node) bool {
	return prev.Size == cur.Size && prev.MTime.Equal(cur.MTime) && prev.Mode == cur.Mode &&
		prev.UID == cur.UID && prev.GID == cur.GID && len(prev.Content) > 0
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

// saveFile chunks a file (node, at p) and stores its chunks. It returns the chunks and the file's
// size as read, which is what the snapshot records even if the file changed since it was
// listed. prev is the file's changed entry in the parent snapshot, if there is one: where the
// file still shares blocks with the parent's source (see extents.go), only the rest is read.
func (a *archiver) saveFile(ctx context.Context, p, rel string, node, prev *Node) ([]repo.ID, int64, error) {
	f, err := openFile(p, unix.O_RDONLY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	if prev != nil && node.Size > int64(a.chunker.MinSize) {
		if shared := a.parentShared(f, rel, node, prev); len(shared) > 0 {
			return a.saveChangedRanges(ctx, f, prev.Content, shared)
		}
	}
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
	return a.saveChunks(ctx, p, io.MultiReader(bytes.NewReader(small), f))
}

// saveChunks cuts what r reads (the file p) into chunks with a pooled chunker and hands each to
// the blob saver; the chunker reads sequentially while chunks are encoded in parallel.
func (a *archiver) saveChunks(ctx context.Context, p string, r io.Reader) ([]repo.ID, int64, error) {
	c := a.chunkers.Get().(*chunkers.Chunker)
	defer a.chunkers.Put(c)
	c.Reset(r)
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
			cell, err := a.saveBlob(gctx, g, chunk)
			if err != nil {
				// The group's error is why its context ended, if a blob failed.
				if werr := g.Wait(); werr != nil {
					err = werr
				}
				return nil, 0, fmt.Errorf("storing %s: %w", p, err)
			}
			cells = append(cells, cell)
			size += int64(len(chunk))
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

// saveChangedRanges stores the file f that shares the byte ranges shared with its copy in the
// parent source: each of the parent's chunks (content) lying wholly inside them and inside the
// file is reused unread, and the bytes between are read and chunked afresh, every run starting
// where the parent chunk it replaces started (so the chunks after it line up with the parent's
// again).
func (a *archiver) saveChangedRanges(ctx context.Context, f *os.File, content []repo.ID, shared [][2]uint64) ([]repo.ID, int64, error) {
	p := f.Name()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", p, err)
	}
	size := uint64(fi.Size())
	var ids []repo.ID
	var pos uint64 // the file up to pos is in ids
	readTo := func(end uint64) error {
		got, n, err := a.saveChunks(ctx, p, io.NewSectionReader(f, int64(pos), int64(end-pos)))
		if err != nil {
			return err
		}
		if uint64(n) != end-pos {
			return fmt.Errorf("reading %s: it shrank while being read", p)
		}
		ids, pos = append(ids, got...), end
		return nil
	}
	var off uint64 // where the parent's chunk starts
	k := 0
	for _, id := range content {
		_, e, ok := a.r.Lookup(id)
		if !ok {
			break // its length is unknown, so are the offsets of the chunks after it
		}
		end := off + uint64(e.RawLength)
		for k < len(shared) && shared[k][1] <= off {
			k++
		}
		if k < len(shared) && shared[k][0] <= off && end <= shared[k][1] && end <= size && a.r.Has(id) {
			if pos < off {
				if err := readTo(off); err != nil {
					return nil, 0, err
				}
			}
			ids, pos = append(ids, id), end
			a.bytesDone.Add(int64(e.RawLength))
			a.bytesSkipped.Add(int64(e.RawLength))
		}
		off = end
	}
	// The rest, to the end of the file (which may have grown since it was listed).
	got, n, err := a.saveChunks(ctx, p, io.NewSectionReader(f, int64(pos), math.MaxInt64-int64(pos)))
	if err != nil {
		return nil, 0, err
	}
	return append(ids, got...), int64(pos) + n, nil
}
