package repo

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// Reads of several blobs of one pack are merged into one ranged read when the gap between them
// is under readGap, up to ReadMax per read (archive's restore cuts its parts to it): fewer
// requests to the store, bounded memory. 6 MiB rather than 8: as fast (archive.restoreBatches
// has the numbers) with 8 reads in flight from a cloud store, 16 MiB less held.
const (
	readGap = 1 << 20
	ReadMax = 6 << 20
)

// ReadPackBlobs reads the given blobs of one pack with as few ranged reads as it can, verifies
// each, and calls fn with its plaintext (valid only during the call), in offset order.
func (r *Repository) ReadPackBlobs(ctx context.Context, pack ID, entries []PackEntry, fn func(e PackEntry, plain []byte) error) error {
	byOffset := func(a, b PackEntry) int { return cmp.Compare(a.Offset, b.Offset) }
	if !slices.IsSortedFunc(entries, byOffset) { // restores hand runs sorted already
		slices.SortFunc(entries, byOffset)
	}
	key := packKey(pack)
	// One pooled buffer for the plaintexts: restores call this for every part of every pack,
	// and a fresh one each time was collected (and cleared) by the GC again and again.
	pp := r.bufs.get()
	defer func() { r.bufs.put(pp) }()
	plain := (*pp)[:0]
	defer func() { *pp = plain[:0] }() // runs first: the pool gets the grown buffer
	for i := 0; i < len(entries); {
		start, end := int64(entries[i].Offset), int64(entries[i].Offset)+int64(entries[i].Length)
		j := i + 1
		for ; j < len(entries); j++ {
			e := entries[j]
			eEnd := int64(e.Offset) + int64(e.Length)
			if int64(e.Offset)-end > readGap || eEnd-start > ReadMax {
				break
			}
			end = max(end, eEnd)
		}
		if err := r.readRange(ctx, key, start, end, entries[i:j], func(e PackEntry, sealed []byte) error {
			var err error
			if plain, err = r.OpenBlob(key, e, sealed, plain[:0]); err != nil {
				return err
			}
			return fn(e, plain)
		}); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// readRange reads bytes start to end of a pack into a recycled buffer and calls fn with each
// entry's sealed bytes.
func (r *Repository) readRange(ctx context.Context, key string, start, end int64, entries []PackEntry, fn func(e PackEntry, sealed []byte) error) error {
	rb := r.rangeBufs.get(end - start)
	defer r.rangeBufs.put(rb)
	data := (*rb)[:end-start]
	if err := r.store.GetRangeInto(ctx, key, start, data); err != nil {
		return err
	}
	for _, e := range entries {
		off := int64(e.Offset) - start
		if err := fn(e, data[off:off+int64(e.Length)]); err != nil {
			return err
		}
	}
	return nil
}

// rangePool keeps released ReadMax buffers of pack reads, up to rangeKeep. Not a sync.Pool:
// that drops its contents every other GC, and a restore runs one every 90 ms or so (its heap is
// small), so ReadMax buffers were made, and zeroed by the kernel, again and again (makeslice and
// clear_page 3.7% of a restore's CPU). Buffers are only made when none is free, so the pool
// never holds more than the most reads ever in flight at once.
type rangePool struct {
	mu   sync.Mutex
	free []*[]byte
}

// rangeKeep: a restore's default workers from a cloud store on two cores.
const rangeKeep = 8

// get returns a buffer of at least n bytes.
func (p *rangePool) get(n int64) *[]byte {
	if n <= ReadMax {
		p.mu.Lock()
		if k := len(p.free); k > 0 {
			b := p.free[k-1]
			p.free = p.free[:k-1]
			p.mu.Unlock()
			return b
		}
		p.mu.Unlock()
	}
	b := make([]byte, max(n, ReadMax))
	return &b
}

// put keeps a buffer for the next read, unless it is a big read's (over ReadMax) or the pool is
// full.
func (p *rangePool) put(b *[]byte) {
	if cap(*b) != ReadMax {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < rangeKeep {
		p.free = append(p.free, b)
	}
}

// drop empties the pool, for Close.
func (p *rangePool) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = nil
}
