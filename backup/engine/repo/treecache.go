package repo

import (
	"context"
	"sync"
)

// Tree blobs are read one directory at a time, and over S3 each read is a round trip: an
// unchanged backup of 100 directories spent 0.6 s on them against a local MinIO, and would
// spend seconds against a cloud store. Writers therefore put tree blobs in packs of their own
// (Writer.Add), and readers fetch the span of a pack that holds its tree blobs in one request
// and keep it, sealed, in a small cache: every further tree of that pack is served from memory.
// Packs written before tree packs existed mix trees with data; their tree span is read whole only
// when it is small (treeSpanMax), else each tree is read on its own as before.
const (
	treeSpanMax    = 8 << 20
	treeCacheBytes = 64 << 20
)

// span is the byte range of a pack that holds all of its tree blobs.
type span struct{ start, end uint32 }

func (s span) add(off, length uint32) span {
	if s.end == 0 || off < s.start {
		s.start = off
	}
	s.end = max(s.end, off+length)
	return s
}

// treeCache holds sealed tree spans by pack, evicting the oldest past treeCacheBytes. A span
// is fetched once however many goroutines ask for it at the same time.
type treeCache struct {
	mu    sync.Mutex
	spans map[ID]*cachedSpan
	order []ID // oldest first
	bytes int
}

type cachedSpan struct {
	span  span
	ready chan struct{}
	data  []byte
	err   error
}

// get returns the sealed bytes of s in pack, calling fetch at most once per pack and span while
// they stay cached.
func (c *treeCache) get(ctx context.Context, pack ID, s span, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if c.spans == nil {
		c.spans = map[ID]*cachedSpan{}
	}
	e, ok := c.spans[pack]
	if ok && e.span != s {
		// The index changed (new packs with the same blobs are fine, but a pack's span
		// does not change): drop the stale entry.
		c.dropLocked(pack)
		ok = false
	}
	if !ok {
		e = &cachedSpan{span: s, ready: make(chan struct{})}
		c.spans[pack] = e
		c.order = append(c.order, pack)
		c.mu.Unlock()
		e.data, e.err = fetch(ctx)
		close(e.ready)
		c.mu.Lock()
		switch {
		case c.spans[pack] != e:
			// Dropped while being fetched: its bytes were never counted.
		case e.err != nil:
			c.dropLocked(pack) // errors are not cached: the next reader tries again
		default:
			c.bytes += len(e.data)
			for c.bytes > treeCacheBytes && len(c.order) > 1 {
				c.dropLocked(c.order[0])
			}
		}
		c.mu.Unlock()
		return e.data, e.err
	}
	c.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e.data, e.err
}

func (c *treeCache) dropLocked(pack ID) {
	e := c.spans[pack]
	delete(c.spans, pack)
	for i, p := range c.order {
		if p == pack {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	select {
	case <-e.ready:
		if e.err == nil {
			c.bytes -= len(e.data)
		}
	default:
		// Still being fetched: its bytes were never counted.
	}
}
