package archive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/crashpoint"
)

// Files are restored in batches, pack by pack rather than file by file: every chunk the
// batch's files need is grouped by the pack that holds it, each pack is read with as few ranged
// reads as possible (repo.ReadPackBlobs), and each chunk is written wherever it goes, in
// parallel across parts of packs. That turns one request per chunk into a few per pack, and a
// chunk used several times is read once. Two batches (four from a cloud store) are written
// while the tree walk creates the files of the next ones. Batches bound memory and open files
// (at most restoreBatches + 2 batches' worth: those being written, one queued, one being
// filled) whatever the volume.
const (
	batchFiles  = 256
	batchChunks = 4096
)

// restoreBatches is how many batches are written at once. From a cloud store each read waits a
// round trip, and a batch of small files has only a few parts (of at least partMin) to read:
// with 8 workers and 4 batches instead of 4 and 2 (and reads of at most 6 instead of 8 MiB),
// restoring the standard dataset of docs/performance.md from MinIO through 20 ms a request
// took 4.17–4.20 instead of 5.96–6.04 s (3 alternated pairs, about 720 requests; 8 workers
// alone: 4.87 s; 3.1 requests in flight on average before), peak RSS 122–125 → 165–169 MiB.
// With no added latency, and from a directory, the time did not change.
func restoreBatches(local bool) int {
	if local {
		return 2
	}
	return 4
}

// fileJob is a regular file being restored: created empty when queued, written as its packs
// are read, and finished (truncated to its size, metadata applied) when its last chunk lands.
type fileJob struct {
	path string
	node *Node
	left atomic.Int64 // chunks not written yet
	// sized is set when the file's last byte has been written, so it needs no truncate.
	sized atomic.Bool

	mu sync.Mutex
	f  *os.File // open from creation until finished
}

type chunkTarget struct {
	job *fileJob
	off int64
}

type fileBatch struct {
	files  int
	chunks int
	blobs  map[repo.ID][]chunkTarget
	jobs   []*fileJob // to close their files if the batch fails
}

// queueFile creates a regular file and queues its chunks, handing the batch to the writer when
// full. Directories are restored in parallel, so it may run concurrently.
func (rs *restorer) queueFile(n *Node, p string) error {
	// O_NOFOLLOW and O_EXCL: never write through a symlink, never into a file that exists.
	// The file stays open until its last chunk is written (opening is not cheap), so a batch
	// holds up to batchFiles descriptors.
	f, err := openFile(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("restoring %s: %w", p, err)
	}
	job := &fileJob{path: p, node: n, f: f}
	targets := make([]chunkTarget, len(n.Content))
	var off int64
	for i, id := range n.Content {
		_, e, ok := rs.r.Lookup(id)
		if !ok {
			f.Close()
			return fmt.Errorf("restoring %s: blob %s is not in the index (run storkctl repo check)", p, id)
		}
		targets[i] = chunkTarget{job, off}
		off += int64(e.RawLength)
	}
	if off != n.Size {
		f.Close()
		return fmt.Errorf("restoring %s: its chunks hold %d bytes, the backup recorded %d", p, off, n.Size)
	}
	if len(n.Content) == 0 {
		return rs.finish(job)
	}
	job.left.Store(int64(len(n.Content)))

	rs.mu.Lock()
	b := &rs.batch
	if b.blobs == nil {
		b.blobs = map[repo.ID][]chunkTarget{}
	}
	b.jobs = append(b.jobs, job)
	for i, id := range n.Content {
		b.blobs[id] = append(b.blobs[id], targets[i])
	}
	b.files++
	b.chunks += len(n.Content)
	var full fileBatch
	if b.files >= batchFiles || b.chunks >= batchChunks {
		full, rs.batch = rs.batch, fileBatch{}
	}
	rs.mu.Unlock()
	return rs.send(full)
}

// startWriting starts the goroutine that writes batches; wait ends it and returns its first
// error. After an error, the batches still queued are closed unwritten. Several batches are
// written at once (restoreBatches), their parts sharing the workers, so that the cores do not
// wait for the last part of one batch before the next starts.
func (rs *restorer) startWriting(ctx context.Context) (wait func() error) {
	rs.batches = make(chan fileBatch, 1)
	rs.workers = make(chan struct{}, rs.opts.Workers)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var writing sync.WaitGroup
		inFlight := make(chan struct{}, rs.batchesAtOnce)
		for b := range rs.batches {
			inFlight <- struct{}{}
			if rs.writeErr.Load() != nil {
				b.close()
				<-inFlight
				continue
			}
			writing.Go(func() {
				defer func() { <-inFlight }()
				if err := rs.write(ctx, b); err != nil {
					rs.writeErr.CompareAndSwap(nil, &err)
				}
			})
		}
		writing.Wait()
	}()
	return func() error {
		close(rs.batches)
		<-done
		if err := rs.writeErr.Load(); err != nil {
			return *err
		}
		return nil
	}
}

// flush hands the batch being filled to the writer.
func (rs *restorer) flush() error {
	rs.mu.Lock()
	b := rs.batch
	rs.batch = fileBatch{}
	rs.mu.Unlock()
	return rs.send(b)
}

// send hands a batch to the writer, or closes its files after a write failed.
func (rs *restorer) send(b fileBatch) error {
	if err := rs.writeErr.Load(); err != nil {
		b.close()
		return *err
	}
	if b.files > 0 {
		rs.batches <- b
	}
	return nil
}

// write writes every file of a batch.
func (rs *restorer) write(ctx context.Context, b fileBatch) error {
	byPack := map[repo.ID][]repo.PackEntry{}
	var sealed int64
	for id := range b.blobs {
		pack, e, _ := rs.r.Lookup(id) // queueFile checked
		byPack[pack] = append(byPack[pack], e)
		sealed += int64(e.Length)
	}
	g, gctx := errgroup.WithContext(ctx)
	// A pack's chunks are read in parts that run in parallel: a batch of small files lies in
	// one or two packs, and with one goroutine a pack a restore of many small files kept one
	// core busy (1.1 cores on the standard dataset of docs/performance.md). Parts of
	// 1/(2×workers) of the batch, between partMin and partMax, keep requests to a cloud store
	// few and large.
	part := min(max(sealed/int64(2*rs.opts.Workers), partMin), partMax)
	for pack, all := range byPack {
		for _, entries := range splitByOffset(all, part) {
			g.Go(func() error {
				select {
				case rs.workers <- struct{}{}:
					defer func() { <-rs.workers }()
				case <-gctx.Done():
					return gctx.Err()
				}
				done := map[repo.ID]bool{}
				err := rs.r.ReadPackBlobs(gctx, pack, entries, func(e repo.PackEntry, plain []byte) error {
					done[e.ID] = true
					return rs.writeChunk(b.blobs[e.ID], plain)
				})
				if !errors.Is(err, objstore.ErrNotFound) {
					return err
				}
				// The pack is gone: a prune moved its blobs since the index was read.
				// LoadBlob finds them again.
				for _, e := range entries {
					if done[e.ID] {
						continue
					}
					plain, err := rs.r.LoadBlob(gctx, e.ID)
					if err != nil {
						return err
					}
					if err := rs.writeChunk(b.blobs[e.ID], plain); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	err := g.Wait()
	if err != nil {
		b.close()
	}
	return err
}

// partMin and partMax bound a part's sealed bytes (partMax: a read's most, repo.ReadMax).
// Each request costs an object store more than its bytes (MinIO reads the object's metadata
// and checks the signature per GET). Restoring the standard dataset of docs/performance.md from
// MinIO, parts of at least 2 MiB rather than 256 KiB took MinIO 1.70 instead of 2.10
// CPU-seconds and the restore 3.06 instead of 3.38 s (medians of 4 pairs, 4/4 faster); from a
// directory they made no difference. 4 and 8 MiB were no better: fewer parts keep fewer workers
// busy.
const (
	partMin = 2 << 20
	partMax = repo.ReadMax
)

// splitByOffset sorts a pack's entries by offset and cuts them into runs of at least size
// sealed bytes (the last may be smaller).
func splitByOffset(entries []repo.PackEntry, size int64) [][]repo.PackEntry {
	slices.SortFunc(entries, func(a, b repo.PackEntry) int { return cmp.Compare(a.Offset, b.Offset) })
	var runs [][]repo.PackEntry
	start, n := 0, int64(0)
	for i, e := range entries {
		n += int64(e.Length)
		if n >= size || i == len(entries)-1 {
			runs = append(runs, entries[start:i+1])
			start, n = i+1, 0
		}
	}
	return runs
}

// close closes the files of a batch that failed.
func (b *fileBatch) close() {
	for _, j := range b.jobs {
		_ = j.close()
	}
}

// writeChunk writes one chunk to every place it goes; all-zero chunks, and the whole zero
// pages inside the others, are left as holes.
func (rs *restorer) writeChunk(targets []chunkTarget, plain []byte) error {
	zero := allZero(plain)
	for _, t := range targets {
		if !zero {
			f, err := t.job.file()
			if err != nil {
				return err
			}
			wroteEnd, err := writeSparse(f, plain, t.off)
			if err != nil {
				return fmt.Errorf("restoring %s: %w", t.job.path, err)
			}
			if wroteEnd && t.off+int64(len(plain)) == t.job.node.Size {
				t.job.sized.Store(true)
			}
		}
		crashpoint.Midway(CrashRestoreMidway, rs.bytesDone.Add(int64(len(plain))), rs.bytesTotal.Load())
		if t.job.left.Add(-1) == 0 {
			if err := rs.finish(t.job); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *fileJob) file() (*os.File, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil, fmt.Errorf("restoring %s: written after it was finished", j.path)
	}
	return j.f, nil
}

func (j *fileJob) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// finish truncates a written file to its size, so that trailing zero chunks become a hole of
// the right length, applies its metadata and closes it. A file whose last byte was written
// has its size already: truncating it anyway was 3% of a restore's CPU (ext4 updates the
// inode all the same).
func (rs *restorer) finish(j *fileJob) error {
	f, err := j.file()
	if err != nil {
		return err
	}
	if j.node.Size > 0 && !j.sized.Load() {
		err = f.Truncate(j.node.Size)
	}
	var metaErr error
	if err == nil {
		// After the last write, which sets mtime; through the open descriptor.
		metaErr = applyMeta(j.path, int(f.Fd()), j.node, false)
	}
	if cerr := j.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restoring %s: %w", j.path, err)
	}
	if metaErr != nil {
		return metaErr
	}
	rs.files.Add(1)
	return nil
}

// writeSparse writes b at off except the whole, page-aligned zero pages in it: a chunk that
// holds the edge of a hole (a database file's unwritten region next to data) keeps its hole.
// Files are created empty (O_EXCL), so what is not written reads as zeros. wroteEnd says
// whether b's last byte was written (not left as a hole).
func writeSparse(f *os.File, b []byte, off int64) (wroteEnd bool, err error) {
	const page = int64(len(zeroPage))
	start := 0 // start of the data not written yet
	for i := 0; i < len(b); {
		next := i + int(page-(off+int64(i))%page)
		if next > len(b) {
			next = len(b)
		}
		if int64(next-i) == page && string(b[i:next]) == string(zeroPage[:]) {
			if start < i {
				if _, err := f.WriteAt(b[start:i], off+int64(start)); err != nil {
					return false, err
				}
			}
			start = next
		}
		i = next
	}
	if start < len(b) {
		_, err := f.WriteAt(b[start:], off+int64(start))
		return err == nil, err
	}
	return false, nil
}
