package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"stork.dev/stork/backup/engine/objstore"
)

// Garbage collection runs in two phases so that it is safe while backups run
// (docs/repository-format.md, "Garbage collection", says why in full):
//
//  1. Mark: packs holding no blob that any snapshot references (and packs no index lists, left
//     by killed backups) are listed in a deletion mark gc/<ID>. Packs that are mostly unused are
//     first copied (their used blobs, into new packs) and then marked too. Writers that load
//     the index after the mark do not deduplicate against marked packs.
//  2. Sweep, in a later prune (or the same one when the grace period is zero): once no backup
//     that began before the mark is still running, references are computed again; a marked
//     pack holding a blob that some snapshot now references and that has no other copy is kept;
//     the others leave the index (new index files first, then the old ones are deleted) and
//     are deleted; then the mark is deleted.

// BlobSet is a set of blob IDs.
type BlobSet map[ID]struct{}

// ReferencedFunc returns every blob the repository's snapshots reference (see
// archive.Referenced). Prune calls it once to mark and again before it sweeps.
type ReferencedFunc func(ctx context.Context, r *Repository) (BlobSet, error)

// PruneOptions tune a prune.
type PruneOptions struct {
	// Grace is how old a deletion mark must be before its packs are deleted.
	Grace time.Duration
	// MaxUnused repacks a pack whose unused share of bytes is above it (0.1 = 10%).
	MaxUnused float64
	// ClockSkew is the clock difference between hosts that time comparisons tolerate.
	ClockSkew time.Duration
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// ExtendWithin: on a bucket with Object Lock and a default retention, objects in use whose
	// retention ends within this are given a new one of the default period (default: half of it).
	ExtendWithin time.Duration
}

// DefaultPruneOptions are what storkctl uses unless told otherwise.
func DefaultPruneOptions() PruneOptions {
	return PruneOptions{Grace: time.Hour, MaxUnused: 0.1, ClockSkew: clockSkew}
}

// PruneReport says what a prune did.
type PruneReport struct {
	BlobsReferenced int
	// Marked: packs newly marked for deletion, of which Unindexed were left by killed
	// backups and Repacked had their used blobs copied first.
	PacksMarked, PacksUnindexed, PacksRepacked int
	BytesMarked                                int64
	// Swept: marks whose packs were deleted, packs deleted and kept (a snapshot made during
	// the grace period referenced them).
	MarksSwept, PacksDeleted, PacksKept int
	BytesDeleted                        int64
	IndexFilesRewritten                 int
	LocksRemoved                        int
	// PacksLocked were due for deletion but left, their Object Lock retention running until
	// LockedUntil at the latest; a later prune deletes them.
	PacksLocked int
	LockedUntil time.Time
	// LocksExtended counts the objects in use whose Object Lock retention prune extended.
	LocksExtended int
	// Waiting lists marks not swept yet, and why.
	Waiting []string
}

// LockedSummary says, for a person, which packs the prune left under Object Lock ("" if none).
func (rep *PruneReport) LockedSummary() string {
	if rep.PacksLocked == 0 {
		return ""
	}
	return fmt.Sprintf("left %d packs under Object Lock retention (until %s at the latest) for a later prune", rep.PacksLocked, rep.LockedUntil.UTC().Format(time.RFC3339))
}

type gcMark struct {
	key   string
	Time  time.Time `json:"time"`
	Packs []ID      `json:"packs"`
}

// gcMarks reads every deletion mark.
func (r *Repository) gcMarks(ctx context.Context) ([]gcMark, error) {
	var marks []gcMark
	err := r.store.List(ctx, "gc/", func(o objstore.Object) error {
		id, err := ParseID(strings.TrimPrefix(o.Key, "gc/"))
		if err != nil {
			return &DamagedError{Object: o.Key, Detail: "unexpected name"}
		}
		m := gcMark{key: o.Key}
		if _, err := r.getJSON(ctx, o.Key, id, &m); err != nil {
			if errors.Is(err, objstore.ErrNotFound) {
				return nil // swept meanwhile
			}
			return err
		}
		marks = append(marks, m)
		return nil
	})
	return marks, err
}

// markedPacks is the set of packs the marks list.
func markedPacks(marks []gcMark) map[ID]bool {
	marked := map[ID]bool{}
	for _, m := range marks {
		for _, p := range m.Packs {
			marked[p] = true
		}
	}
	return marked
}

// storedPacks lists the packs in the store, and the keys under data/ that are not pack names.
func (r *Repository) storedPacks(ctx context.Context) (packs map[ID]objstore.Object, strays []string, err error) {
	packs = map[ID]objstore.Object{}
	err = r.store.List(ctx, "data/", func(o objstore.Object) error {
		id, ok := packOf(o.Key)
		if !ok {
			strays = append(strays, o.Key)
			return nil
		}
		packs[id] = o
		return nil
	})
	return packs, strays, err
}

// packOf is the pack a key names, if it is a pack's key (packKey).
func packOf(key string) (ID, bool) {
	id, err := ParseID(key[strings.LastIndexByte(key, '/')+1:])
	return id, err == nil && packKey(id) == key
}

// pruneState is what one prune knows about the repository.
type pruneState struct {
	packs     map[ID][]PackEntry     // indexed packs
	inFiles   map[string][]ID        // index file → its packs
	stored    map[ID]objstore.Object // packs in the store
	marks     []gcMark
	marked    map[ID]bool
	locksRead time.Time
	live      []lockRecord
}

func (r *Repository) readPruneState(ctx context.Context) (*pruneState, error) {
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	st := &pruneState{packs: map[ID][]PackEntry{}, inFiles: map[string][]ID{}}
	var err error
	// Locks are read before the listings: a backup that is not among them began afterwards,
	// so whatever it uploads is newer than locksRead.
	st.locksRead = time.Now()
	if st.live, err = r.liveLocks(ctx); err != nil {
		return nil, err
	}
	if st.marks, err = r.gcMarks(ctx); err != nil {
		return nil, err
	}
	st.marked = markedPacks(st.marks)
	err = r.indexFiles(ctx, func(key string, packs []IndexedPack, err error) error {
		if err != nil {
			return fmt.Errorf("prune needs a readable index (run storkctl repo check): %w", err)
		}
		for _, p := range packs {
			st.inFiles[key] = append(st.inFiles[key], p.ID)
			st.packs[p.ID] = p.Entries
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.stored, _, err = r.storedPacks(ctx) // what is not a pack is check's to report
	return st, err
}

// oldestBackup returns when the oldest live backup session began, or now.
func (st *pruneState) oldestBackup() time.Time {
	oldest := st.locksRead
	for _, l := range st.live {
		if l.Kind == BackupLock && l.Start.Before(oldest) {
			oldest = l.Start
		}
	}
	return oldest
}

// canonical reports whether pack holds the copy of blob id that the index uses.
func (r *Repository) canonical(id, pack ID) bool {
	p, _, ok := r.Lookup(id)
	return ok && p == pack
}

// Prune marks unreferenced data for deletion and deletes what was marked long enough ago,
// while backups may be running. It holds the prune lock throughout.
func (r *Repository) Prune(ctx context.Context, referenced ReferencedFunc, opts PruneOptions) (*PruneReport, error) {
	lock, err := r.Lock(ctx, PruneLock)
	if err != nil {
		return nil, err
	}
	defer func() { _ = lock.Release(ctx) }()
	rep := &PruneReport{}
	if err := r.mark(ctx, referenced, opts, rep); err != nil {
		return rep, fmt.Errorf("marking unused data: %w", err)
	}
	if err := r.sweep(ctx, referenced, opts, rep); err != nil {
		return rep, fmt.Errorf("deleting marked data: %w", err)
	}
	if !opts.DryRun {
		if err := r.extendLocks(ctx, opts, rep); err != nil {
			return rep, fmt.Errorf("extending Object Lock retention: %w", err)
		}
	}
	if !opts.DryRun {
		stale, err := r.staleLockKeys(ctx)
		if err != nil {
			return rep, err
		}
		for _, k := range stale {
			if err := r.store.Delete(ctx, k); err != nil {
				return rep, err
			}
			rep.LocksRemoved++
		}
	}
	return rep, nil
}

// mark is phase 1.
func (r *Repository) mark(ctx context.Context, referenced ReferencedFunc, opts PruneOptions, rep *PruneReport) error {
	st, err := r.readPruneState(ctx)
	if err != nil {
		return err
	}
	ref, err := referenced(ctx, r)
	if err != nil {
		return err
	}
	rep.BlobsReferenced = len(ref)
	var doom, repack []ID
	for p, entries := range st.packs {
		if st.marked[p] {
			continue
		}
		var used, total int64
		for _, e := range entries {
			total += int64(e.Length)
			if _, ok := ref[e.ID]; ok && r.canonical(e.ID, p) {
				used += int64(e.Length)
			}
		}
		_, stored := st.stored[p]
		switch {
		case used == 0:
			doom = append(doom, p)
		case stored && float64(total-used) > opts.MaxUnused*float64(total):
			repack = append(repack, p)
		}
	}
	// Packs no index lists were left by backups that died before indexing them; those of
	// live backups are newer than the backup's start (and than locksRead for backups that
	// began after the locks were read).
	cutoff := st.oldestBackup()
	if g := st.locksRead.Add(-opts.Grace); g.Before(cutoff) {
		cutoff = g
	}
	cutoff = cutoff.Add(-opts.ClockSkew)
	for p, o := range st.stored {
		if _, indexed := st.packs[p]; !indexed && !st.marked[p] && o.ModTime.Before(cutoff) {
			doom = append(doom, p)
			rep.PacksUnindexed++
		}
	}
	if opts.DryRun {
		rep.PacksMarked, rep.PacksRepacked = len(doom)+len(repack), len(repack)
		return nil
	}
	if len(repack) > 0 {
		if err := r.repack(ctx, repack, ref, st); err != nil {
			return err
		}
		doom = append(doom, repack...)
		rep.PacksRepacked = len(repack)
	}
	if len(doom) == 0 {
		return nil
	}
	sort.Slice(doom, func(i, j int) bool { return string(doom[i][:]) < string(doom[j][:]) })
	for _, p := range doom {
		rep.BytesMarked += st.stored[p].Size
	}
	rep.PacksMarked = len(doom)
	_, _, err = r.putJSON(ctx, "gc/", gcMark{Time: time.Now().UTC(), Packs: doom})
	return err
}

// repack copies the used blobs of packs into new packs, verifying each.
func (r *Repository) repack(ctx context.Context, packs []ID, ref BlobSet, st *pruneState) error {
	w := r.NewWriter(ctx, 2)
	w.copying = true
	for _, p := range packs {
		key := packKey(p)
		data, err := r.store.Get(ctx, key)
		if err != nil {
			_, _ = w.Flush()
			return err
		}
		if contentID(data) != p {
			_, _ = w.Flush()
			return &DamagedError{Object: key, Detail: "content does not match its name; run storkctl repo check --read-data"}
		}
		for _, e := range st.packs[p] {
			if _, ok := ref[e.ID]; !ok || !r.canonical(e.ID, p) {
				continue
			}
			if uint64(e.Offset)+uint64(e.Length) > uint64(len(data)) {
				_, _ = w.Flush()
				return &DamagedError{Object: key, Detail: fmt.Sprintf("blob %s lies beyond the pack's end", e.ID)}
			}
			plain, err := r.OpenBlob(key, e, data[e.Offset:e.Offset+e.Length], nil)
			if err != nil {
				_, _ = w.Flush()
				return err
			}
			if _, err := w.Add(e.Type, plain); err != nil {
				_, _ = w.Flush()
				return err
			}
		}
	}
	_, err := w.Flush()
	return err
}

// sweep is phase 2: the marks past their grace period and older than every running backup
// (readyMarks) give the packs to delete (doomedPacks); the index is rewritten without them
// (dropFromIndex), then they and their marks are deleted (deleteSwept).
func (r *Repository) sweep(ctx context.Context, referenced ReferencedFunc, opts PruneOptions, rep *PruneReport) error {
	// Read everything again: the mark just written, and what backups indexed meanwhile.
	st, err := r.readPruneState(ctx)
	if err != nil {
		return err
	}
	ready := readyMarks(st, opts, rep)
	if len(ready) == 0 || opts.DryRun {
		return nil
	}
	ref, err := referenced(ctx, r)
	if err != nil {
		return err
	}
	del := r.doomedPacks(st, ready, ref, rep)
	locked, err := r.skipLocked(ctx, del, rep)
	if err != nil {
		return err
	}
	if err := r.dropFromIndex(ctx, st, del, rep); err != nil {
		return err
	}
	if err := r.deleteSwept(ctx, st, del, locked, ready, rep); err != nil {
		return err
	}
	return r.LoadIndex(ctx)
}

// readyMarks returns the marks whose packs may go now; the others are reported as waiting,
// with why: their grace period, or a backup that began before them and may have
// deduplicated against their packs.
func readyMarks(st *pruneState, opts PruneOptions, rep *PruneReport) []gcMark {
	var ready []gcMark
	for _, m := range st.marks {
		if age := st.locksRead.Sub(m.Time); age < opts.Grace {
			rep.Waiting = append(rep.Waiting, fmt.Sprintf("%s (%d packs): in its grace period for another %s", m.key, len(m.Packs), (opts.Grace-age).Round(time.Second)))
			continue
		}
		blocked := ""
		for _, l := range st.live {
			if l.Kind == BackupLock && l.Start.Before(m.Time.Add(opts.ClockSkew)) {
				blocked = l.String()
				break
			}
		}
		if blocked != "" {
			rep.Waiting = append(rep.Waiting, fmt.Sprintf("%s (%d packs): waiting for the %s, which began before it", m.key, len(m.Packs), blocked))
			continue
		}
		ready = append(ready, m)
	}
	return ready
}

// doomedPacks returns the packs of the ready marks to delete. A pack is kept if a snapshot made
// since the mark needs a blob of it that has no copy outside marked packs (the index prefers
// unmarked copies).
func (r *Repository) doomedPacks(st *pruneState, ready []gcMark, ref BlobSet, rep *PruneReport) map[ID]bool {
	del := map[ID]bool{}
	for _, m := range ready {
		for _, p := range m.Packs {
			keep := false
			for _, e := range st.packs[p] {
				if _, ok := ref[e.ID]; ok && !r.Has(e.ID) {
					keep = true
					break
				}
			}
			if keep {
				rep.PacksKept++
			} else {
				del[p] = true
			}
		}
	}
	return del
}

// skipLocked leaves out of del, and returns, the packs whose Object Lock retention has not
// ended. Deleting one would only hide it behind a delete marker (its data still stored, and
// billed, until the retention ends) and drop it from the index; kept, it stays indexed and its
// mark stays, so that extendLocks leaves it to age out and a prune after its retention deletes it.
func (r *Repository) skipLocked(ctx context.Context, del map[ID]bool, rep *PruneReport) (map[ID]bool, error) {
	locked := map[ID]bool{}
	if !r.store.ObjectLock() {
		return locked, nil
	}
	now := time.Now()
	for p := range del {
		until, err := r.store.RetainedUntil(ctx, packKey(p))
		if errors.Is(err, objstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if until.After(now) {
			delete(del, p)
			locked[p] = true
			rep.PacksLocked++
			if until.After(rep.LockedUntil) {
				rep.LockedUntil = until
			}
		}
	}
	return locked, nil
}

// extendLocks keeps what the repository still uses locked for as long as the store's retention
// period (the bucket's default, or the location's longer objectLockRetention) wants, as kopia's
// maintenance does: every object but the packs marked for deletion
// and the backups' locks whose retention ends within half that period (opts.ExtendWithin when
// set) gets a retention until now + the period. What nothing uses any more ages out and a
// later prune deletes it.
func (r *Repository) extendLocks(ctx context.Context, opts PruneOptions, rep *PruneReport) error {
	period := r.store.RetentionPeriod()
	if period <= 0 {
		return nil
	}
	within := opts.ExtendWithin
	if within <= 0 {
		within = period / 2
	}
	marks, err := r.gcMarks(ctx)
	if err != nil {
		return err
	}
	marked := markedPacks(marks)
	now := time.Now()
	return r.store.List(ctx, "", func(o objstore.Object) error {
		if strings.HasPrefix(o.Key, "locks/") {
			return nil
		}
		if id, ok := packOf(o.Key); ok && marked[id] {
			return nil
		}
		until, err := r.store.RetainedUntil(ctx, o.Key)
		if err != nil {
			return err
		}
		if until.After(now.Add(within)) {
			return nil
		}
		if err := r.store.ExtendRetention(ctx, o.Key, now.Add(period)); err != nil {
			return err
		}
		rep.LocksExtended++
		return nil
	})
}

// dropFromIndex writes replacement index files without the doomed packs, then deletes the old
// files. A prune killed in between leaves duplicate entries (harmless) or packs no index lists
// (marked by the next prune), never an index entry for a deleted pack.
func (r *Repository) dropFromIndex(ctx context.Context, st *pruneState, del map[ID]bool, rep *PruneReport) error {
	var replaced []string
	for key, packs := range st.inFiles {
		var keep []IndexedPack
		hit := false
		for _, p := range packs {
			if del[p] {
				hit = true
			} else {
				keep = append(keep, IndexedPack{ID: p, Entries: st.packs[p]})
			}
		}
		if !hit {
			continue
		}
		if len(keep) > 0 {
			sealed := r.encodeIndex(keep)
			if _, err := r.store.PutNew(ctx, "index/"+contentID(sealed).String(), sealed); err != nil {
				return err
			}
		}
		replaced = append(replaced, key)
	}
	for _, key := range replaced {
		if err := r.store.Delete(ctx, key); err != nil {
			return err
		}
	}
	rep.IndexFilesRewritten = len(replaced)
	return nil
}

// deleteSwept deletes the doomed packs, once no index lists them, then the marks they came from.
func (r *Repository) deleteSwept(ctx context.Context, st *pruneState, del, locked map[ID]bool, ready []gcMark, rep *PruneReport) error {
	for p := range del {
		if err := r.store.Delete(ctx, packKey(p)); err != nil {
			return err
		}
		rep.PacksDeleted++
		rep.BytesDeleted += st.stored[p].Size
	}
	for _, m := range ready {
		if slices.ContainsFunc(m.Packs, func(p ID) bool { return locked[p] }) {
			continue // swept again once the retention has ended
		}
		if err := r.store.Delete(ctx, m.key); err != nil {
			return err
		}
		rep.MarksSwept++
	}
	return nil
}
