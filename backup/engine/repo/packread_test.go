package repo

import (
	"bytes"
	"context"
	"reflect"
	"testing"
)

func TestRangeCap(t *testing.T) {
	for _, tc := range []struct{ n, want int64 }{
		{1, 64 << 10},
		{64 << 10, 64 << 10},
		{64<<10 + 1, 128 << 10},
		{3 << 20, 4 << 20},
		{readMax, readMax},
		{readMax + 1, readMax + 1}, // one big blob: exact, not pooled
	} {
		if got := rangeCap(tc.n); got != tc.want {
			t.Errorf("rangeCap(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	if c := rangeClass(readMax); c != rangeClasses-1 {
		t.Errorf("readMax is in class %d, want the last, %d", c, rangeClasses-1)
	}
}

func TestPlanPackRead(t *testing.T) {
	r := &Repository{}
	sized := func(length uint32, offs ...uint32) []PackEntry {
		var es []PackEntry
		for _, o := range offs {
			es = append(es, PackEntry{Offset: o, Length: length})
		}
		return es
	}
	at := func(offs ...uint32) []PackEntry { return sized(1000, offs...) }
	const mib = 1 << 20
	for _, tc := range []struct {
		name    string
		entries []PackEntry
		want    [][2]int64 // start, end of each read
	}{
		{"adjacent blobs, one read", at(0, 1000, 2000), [][2]int64{{0, 3000}}},
		{"unsorted input is sorted", at(2000, 0, 1000), [][2]int64{{0, 3000}}},
		{"a gap under readGap is read through", at(0, readGap), [][2]int64{{0, readGap + 1000}}},
		{"a gap over readGap splits", at(0, readGap+1001), [][2]int64{{0, 1000}, {readGap + 1001, readGap + 2001}}},
		{"reads stop at readMax", sized(3*mib, 0, 3*mib, 6*mib), [][2]int64{{0, 6 * mib}, {6 * mib, 9 * mib}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := r.PlanPackRead(ID{1}, tc.entries)
			var got [][2]int64
			var size int64
			for _, rg := range p.ranges {
				got = append(got, [2]int64{rg.start, rg.end})
				size += rangeCap(rg.end - rg.start)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reads %v, want %v", got, tc.want)
			}
			if p.Size() != size {
				t.Errorf("Size %d, want the buffers' capacity %d", p.Size(), size)
			}
		})
	}
}

// A pack read fetched once and opened gives every blob in offset order, reuses its buffers
// after Release, and a failed fetch releases what it took.
func TestPackReadFetchOpen(t *testing.T) {
	ctx := context.Background()
	s, r := newTestRepo(t)
	w := r.NewWriter(ctx, 1)
	want := map[ID][]byte{}
	for i := range 5 {
		data := randomBytes(10<<10 + i)
		id, err := w.Add(DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = data
	}
	if _, err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var pack ID
	var entries []PackEntry
	for id := range want {
		p, e, _ := r.Lookup(id)
		pack, entries = p, append(entries, e)
	}
	pr := r.PlanPackRead(pack, entries)
	if err := pr.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	var last uint32
	got := 0
	if err := pr.Open(func(e PackEntry, plain []byte) error {
		if e.Offset < last {
			t.Errorf("blob at %d after %d: not in offset order", e.Offset, last)
		}
		last = e.Offset
		if !bytes.Equal(plain, want[e.ID]) {
			t.Errorf("blob %s: wrong plaintext", e.ID)
		}
		got++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("opened %d blobs, want %d", got, len(want))
	}
	pr.Release()
	pr.Release() // twice is harmless
	if pr.ranges[0].buf != nil {
		t.Error("Release kept the buffer")
	}

	if err := s.Delete(ctx, packKey(pack)); err != nil {
		t.Fatal(err)
	}
	pr = r.PlanPackRead(pack, entries)
	if err := pr.Fetch(ctx); err == nil {
		t.Fatal("fetching a deleted pack succeeded")
	}
	for _, rg := range pr.ranges {
		if rg.buf != nil {
			t.Error("a failed Fetch kept its buffer")
		}
	}
}
