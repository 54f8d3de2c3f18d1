package archive

import (
	"sync"
	"sync/atomic"
	"time"
)

// Progress reports how far a backup or restore got. Totals come from a scan (alongside the
// backup, so they may grow during the first moments), or for a backup with a parent from the
// parent's totals (an estimate until the last report, never below what is done).
type Progress struct {
	FilesDone, FilesTotal int64
	BytesDone, BytesTotal int64
	// BytesSkipped is the part of BytesDone a backup took from the parent snapshot without
	// reading it (files unchanged since); BytesDone - BytesSkipped were read.
	BytesSkipped int64
}

// progress counts a backup's or restore's work against totals known up front, and reports it.
type progress struct {
	filesTotal, bytesTotal atomic.Int64
	files, bytesDone       atomic.Int64
	bytesSkipped           atomic.Int64
	// estimated says the totals are the parent snapshot's, not counted.
	estimated bool
}

// report calls fn about every 200ms until stop is called, and once more then; a nil fn does
// nothing.
func (p *progress) report(fn func(Progress)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	snapshot := func() {
		files, bytes := p.files.Load(), p.bytesDone.Load()
		fn(Progress{FilesDone: files, FilesTotal: max(files, p.filesTotal.Load()), BytesDone: bytes, BytesTotal: max(bytes, p.bytesTotal.Load()),
			BytesSkipped: p.bytesSkipped.Load()})
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				snapshot()
				return
			case <-t.C:
				snapshot()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
