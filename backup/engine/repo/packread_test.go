package repo

import "testing"

// Released buffers are reused, the pool keeps at most rangeKeep, and a big read's buffer is
// not kept.
func TestRangePool(t *testing.T) {
	var p rangePool
	a := p.get(100 << 10)
	if cap(*a) != ReadMax {
		t.Fatalf("buffer for 100 KiB has capacity %d, want ReadMax", cap(*a))
	}
	p.put(a)
	if b := p.get(ReadMax); b != a {
		t.Error("a released buffer was not reused")
	}
	big := p.get(ReadMax + 1)
	if cap(*big) < ReadMax+1 {
		t.Fatalf("buffer for ReadMax+1 bytes has capacity %d", cap(*big))
	}
	p.put(big)
	if len(p.free) != 0 {
		t.Errorf("pool keeps %d buffers after a big read's was released, want 0", len(p.free))
	}
	for range rangeKeep + 2 {
		b := make([]byte, ReadMax)
		p.put(&b)
	}
	if len(p.free) != rangeKeep {
		t.Errorf("pool keeps %d buffers, want its cap %d", len(p.free), rangeKeep)
	}
	p.drop()
	if len(p.free) != 0 {
		t.Error("drop left buffers in the pool")
	}
}
