package repo

import (
	"cmp"
	"context"
	"math/bits"
	"slices"
)

// Reads of several blobs of one pack are merged into one ranged read when the gap between them
// is under readGap, up to readMax per read: fewer requests to the store, bounded memory.
const (
	readGap = 1 << 20
	readMax = 8 << 20
)

// Range buffers come in power-of-two size classes from rangeMin to readMax, each with its own
// pool: a read of 100 KiB holds 128 KiB, not readMax, so that a restore can keep many reads in
// flight within a byte budget. A read larger than readMax (one big blob) is not pooled.
const (
	rangeMin     = 64 << 10
	rangeClasses = 8 // 64 KiB … 8 MiB
)

// rangeClass is the size class of a read of n bytes, or -1 above readMax.
func rangeClass(n int64) int {
	if n > readMax {
		return -1
	}
	if n <= rangeMin {
		return 0
	}
	return bits.Len64(uint64(n-1)) - bits.Len64(rangeMin-1)
}

// rangeCap is the capacity of a buffer holding n bytes.
func rangeCap(n int64) int64 {
	if c := rangeClass(n); c >= 0 {
		return rangeMin << c
	}
	return n
}

// A PackRead reads some blobs of one pack in two steps: Fetch reads their sealed bytes with as
// few ranged reads as it can, Open verifies and opens them. Keeping the steps apart lets a
// restore fetch the next parts from a distant store while the cores open and write this one.
// Release returns its buffers; a PackRead is used by one goroutine.
type PackRead struct {
	r       *Repository
	key     string
	entries []PackEntry // by offset
	ranges  []packRange
}

// packRange is one ranged read: entries[first:last] of the PackRead, bytes from start.
type packRange struct {
	first, last int
	start, end  int64
	buf         *[]byte // filled by Fetch
}

// PlanPackRead plans the reads of the given blobs of one pack (sorted by offset in place); it
// does no I/O.
func (r *Repository) PlanPackRead(pack ID, entries []PackEntry) *PackRead {
	byOffset := func(a, b PackEntry) int { return cmp.Compare(a.Offset, b.Offset) }
	if !slices.IsSortedFunc(entries, byOffset) { // restores hand runs sorted already
		slices.SortFunc(entries, byOffset)
	}
	p := &PackRead{r: r, key: packKey(pack), entries: entries}
	for i := 0; i < len(entries); {
		start, end := int64(entries[i].Offset), int64(entries[i].Offset)+int64(entries[i].Length)
		j := i + 1
		for ; j < len(entries); j++ {
			e := entries[j]
			eEnd := int64(e.Offset) + int64(e.Length)
			if int64(e.Offset)-end > readGap || eEnd-start > readMax {
				break
			}
			end = max(end, eEnd)
		}
		p.ranges = append(p.ranges, packRange{first: i, last: j, start: start, end: end})
		i = j
	}
	return p
}

// Size is the memory the read holds from Fetch to Release: its buffers' capacity.
func (p *PackRead) Size() int64 {
	var n int64
	for _, rg := range p.ranges {
		n += rangeCap(rg.end - rg.start)
	}
	return n
}

// Fetch reads the sealed bytes. On error the buffers are released already.
func (p *PackRead) Fetch(ctx context.Context) error {
	for i := range p.ranges {
		rg := &p.ranges[i]
		n := rg.end - rg.start
		if rg.buf == nil {
			rg.buf = p.r.rangeBuf(n)
		}
		if err := p.r.store.GetRangeInto(ctx, p.key, rg.start, (*rg.buf)[:n]); err != nil {
			p.Release()
			return err
		}
	}
	return nil
}

// Open verifies each fetched blob and calls fn with its plaintext (valid only during the call),
// in offset order.
func (p *PackRead) Open(fn func(e PackEntry, plain []byte) error) error {
	// One pooled buffer for the plaintexts: restores open every part of every pack, and a
	// fresh one each time was collected (and cleared) by the GC again and again.
	pp := p.r.bufs.get()
	defer func() { p.r.bufs.put(pp) }()
	plain := (*pp)[:0]
	defer func() { *pp = plain[:0] }() // runs first: the pool gets the grown buffer
	for _, rg := range p.ranges {
		data := (*rg.buf)[:rg.end-rg.start]
		for _, e := range p.entries[rg.first:rg.last] {
			off := int64(e.Offset) - rg.start
			var err error
			if plain, err = p.r.OpenBlob(p.key, e, data[off:off+int64(e.Length)], plain[:0]); err != nil {
				return err
			}
			if err := fn(e, plain); err != nil {
				return err
			}
		}
	}
	return nil
}

// Release returns the read's buffers to their pools; it may be called more than once.
func (p *PackRead) Release() {
	for i := range p.ranges {
		rg := &p.ranges[i]
		if rg.buf != nil {
			if c := rangeClass(rg.end - rg.start); c >= 0 {
				p.r.rangeBufs[c].Put(rg.buf)
			}
			rg.buf = nil
		}
	}
}

// rangeBuf takes a buffer for a read of n bytes from its class's pool.
func (r *Repository) rangeBuf(n int64) *[]byte {
	c := rangeClass(n)
	if c >= 0 {
		if b, ok := r.rangeBufs[c].Get().(*[]byte); ok {
			return b
		}
	}
	b := make([]byte, rangeCap(n))
	return &b
}

// ReadPackBlobs reads the given blobs of one pack with as few ranged reads as it can, verifies
// each, and calls fn with its plaintext (valid only during the call), in offset order.
func (r *Repository) ReadPackBlobs(ctx context.Context, pack ID, entries []PackEntry, fn func(e PackEntry, plain []byte) error) error {
	p := r.PlanPackRead(pack, entries)
	if err := p.Fetch(ctx); err != nil {
		return err
	}
	defer p.Release()
	return p.Open(fn)
}
