package repo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"stork.dev/stork/backup/engine/objstore"
)

// CheckOptions tune a check.
type CheckOptions struct {
	// ReadData reads every pack in full and verifies every blob, not only the structure.
	ReadData bool
	// Workers bounds the packs read at once; default GOMAXPROCS.
	Workers int
	// Progress, if set, is called as packs are read (ReadData only).
	Progress func(CheckProgress)
}

// CheckProgress counts the packs read by a check.
type CheckProgress struct {
	PacksDone, PacksTotal int
	BytesDone, BytesTotal int64
}

// CheckReport lists what a check found. Problems name the object that holds them.
type CheckReport struct {
	Packs, IndexFiles, Snapshots, Blobs int
	BytesRead                           int64
	// Problems make the repository (or some snapshots) unreadable.
	Problems []error
	// Notes are harmless findings, such as packs left by an interrupted backup.
	Notes []string
}

// OK says whether the check found no problem.
func (c *CheckReport) OK() bool { return len(c.Problems) == 0 }

func (c *CheckReport) problem(err error) { c.Problems = append(c.Problems, err) }

// Check verifies the repository's structure: every index file and snapshot decodes and matches
// its name, every indexed pack exists and is large enough for its blobs. With ReadData it also
// reads every pack, checks it against its name and its header against the index, and verifies
// every blob. Trees are checked by archive.Check, which calls this.
func (r *Repository) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	rep := &CheckReport{}
	marks, err := r.gcMarks(ctx)
	if err != nil {
		return nil, err
	}
	marked := markedPacks(marks)
	if len(marks) > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d packs are marked for deletion by %d prune runs; the next prune deletes them", len(marked), len(marks)))
	}
	indexed := map[ID][]PackEntry{}
	err = r.indexFiles(ctx, func(key string, packs []IndexedPack, err error) error {
		rep.IndexFiles++
		if err != nil {
			if errors.Is(err, objstore.ErrNotFound) {
				return nil // deleted by a concurrent prune
			}
			var d *DamagedError
			if errors.As(err, &d) {
				rep.problem(err)
				return nil
			}
			return err
		}
		for _, p := range packs {
			indexed[p.ID] = p.Entries
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	stored, strays, err := r.storedPacks(ctx)
	if err != nil {
		return nil, err
	}
	for _, key := range strays {
		rep.problem(&DamagedError{Object: key, Detail: "not a pack name"})
	}
	unindexed := 0
	for p := range stored {
		if _, ok := indexed[p]; !ok && !marked[p] {
			unindexed++
		}
	}
	if unindexed > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d packs are in no index (left by interrupted backups, or a backup is running); prune removes them", unindexed))
	}
	var packs []ID
	for p, entries := range indexed {
		o, ok := stored[p]
		size := o.Size
		if !ok {
			rep.problem(&DamagedError{Object: packKey(p), Detail: "the index lists this pack but it does not exist"})
			continue
		}
		for _, e := range entries {
			if int64(e.Offset)+int64(e.Length) > size {
				rep.problem(&DamagedError{Object: packKey(p), Detail: fmt.Sprintf("blob %s lies beyond the pack's end", e.ID)})
				break
			}
		}
		rep.Blobs += len(entries)
		packs = append(packs, p)
	}
	rep.Packs = len(stored)
	err = r.store.List(ctx, "snapshots/", func(o objstore.Object) error {
		rep.Snapshots++
		id, err := ParseID(strings.TrimPrefix(o.Key, "snapshots/"))
		if err != nil {
			rep.problem(&DamagedError{Object: o.Key, Detail: "not a snapshot name"})
			return nil
		}
		if _, err := r.LoadSnapshot(ctx, id); err != nil {
			var d *DamagedError
			if !errors.As(err, &d) {
				return err
			}
			rep.problem(err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if opts.ReadData {
		sort.Slice(packs, func(i, j int) bool { return string(packs[i][:]) < string(packs[j][:]) })
		if err := r.readPacks(ctx, packs, indexed, stored, opts, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// readPacks reads and verifies packs in parallel.
func (r *Repository) readPacks(ctx context.Context, packs []ID, indexed map[ID][]PackEntry, stored map[ID]objstore.Object, opts CheckOptions, rep *CheckReport) error {
	workers := opts.Workers
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	var total int64
	for _, p := range packs {
		total += stored[p].Size
	}
	var packsDone, bytesDone atomic.Int64
	report := func() {
		if opts.Progress != nil {
			opts.Progress(CheckProgress{PacksDone: int(packsDone.Load()), PacksTotal: len(packs), BytesDone: bytesDone.Load(), BytesTotal: total})
		}
	}
	stopReport := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			report()
			select {
			case <-stopReport:
				report()
				return
			case <-t.C:
			}
		}
	}()
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, p := range packs {
		g.Go(func() error {
			problems, err := r.verifyPack(gctx, p, indexed[p])
			if err != nil {
				return err
			}
			mu.Lock()
			rep.Problems = append(rep.Problems, problems...)
			rep.BytesRead += stored[p].Size
			mu.Unlock()
			packsDone.Add(1)
			bytesDone.Add(stored[p].Size)
			return nil
		})
	}
	err := g.Wait()
	close(stopReport)
	<-reported
	return err
}

// verifyPack reads one pack and returns what is wrong with it; the error is for failures to
// read at all.
func (r *Repository) verifyPack(ctx context.Context, p ID, indexed []PackEntry) ([]error, error) {
	key := packKey(p)
	data, err := r.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	damaged := func(format string, args ...any) []error {
		return []error{&DamagedError{Object: key, Detail: fmt.Sprintf(format, args...)}}
	}
	if contentID(data) != p {
		return damaged("content does not match its name (hash %s)", contentID(data)), nil
	}
	if len(data) < 4 {
		return damaged("too short to be a pack"), nil
	}
	hdrOff, _, err := parsePackTrailer(int64(len(data)), data[len(data)-4:])
	if err != nil {
		return damaged("%v", err), nil
	}
	hdrPlain, err := r.c.open(nil, data[hdrOff:len(data)-4])
	if err != nil {
		return damaged("header: %v", err), nil
	}
	entries, rest, err := decodeEntries(hdrPlain, uint32(hdrOff))
	if err != nil || len(rest) != 0 {
		return damaged("header does not decode: %v", err), nil
	}
	if len(entries) != len(indexed) {
		return damaged("header lists %d blobs, the index %d", len(entries), len(indexed)), nil
	}
	inHeader := map[PackEntry]bool{}
	for _, e := range entries {
		inHeader[e] = true
	}
	var problems []error
	for _, e := range indexed {
		if !inHeader[e] {
			problems = append(problems, damaged("the index's entry for blob %s does not match the pack header", e.ID)...)
		}
	}
	var buf []byte
	for _, e := range entries {
		if uint64(e.Offset)+uint64(e.Length) > uint64(hdrOff) {
			problems = append(problems, damaged("blob %s lies beyond the pack's blobs", e.ID)...)
			continue
		}
		if buf, err = r.OpenBlob(key, e, data[e.Offset:e.Offset+e.Length], buf[:0]); err != nil {
			problems = append(problems, err)
		}
	}
	return problems, nil
}
