package archive

import (
	"context"

	"golang.org/x/sync/errgroup"

	"stork.dev/stork/backup/engine/repo"
)

// The blob saver: each chunk is hashed, compressed, encrypted and packed in its own goroutine,
// at most chunkSlots at once, so that the chunks held in memory are bounded.

// saveBlob copies chunk (the chunker reuses its buffer) and stores it as a data blob in a
// goroutine of g, once a chunk slot is free. The blob's ID lands in the returned cell when g
// is done. The error is the context's, when it ends while waiting for a slot.
func (a *archiver) saveBlob(ctx context.Context, g *errgroup.Group, chunk []byte) (*repo.ID, error) {
	select {
	case a.chunkSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	buf := a.chunkBufs.Get().(*[]byte)
	data := append((*buf)[:0], chunk...)
	*buf = data
	cell := new(repo.ID)
	g.Go(func() error {
		defer func() { a.chunkBufs.Put(buf); <-a.chunkSlots }()
		id, err := a.w.Add(repo.DataBlob, data)
		*cell = id
		a.bytesDone.Add(int64(len(data)))
		return err
	})
	return cell, nil
}
