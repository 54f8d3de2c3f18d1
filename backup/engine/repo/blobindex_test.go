package repo

import (
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
)

func randomID(r *rand.Rand) ID {
	var id ID
	for i := 0; i < len(id); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	return id
}

// TestBlobIndex checks the index against a plain map, in memory and spilled to disk, across
// merges and replaced entries.
func TestBlobIndex(t *testing.T) {
	for _, tc := range []struct {
		name        string
		budget      int64
		n           int
		wantSpilled bool
	}{
		{"in memory", 1 << 30, 20000, false},
		{"spills at once, merges often", 10 * mapEntryBytes, 5000, true},
		{"spills late, merges by an eighth", 10000 * mapEntryBytes, 60000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spillNames []string
			x := newBlobIndex(tc.budget, func() (*os.File, error) {
				f, err := os.CreateTemp(t.TempDir(), "index-")
				if err == nil {
					spillNames = append(spillNames, f.Name())
				}
				return f, err
			})
			defer x.close()
			r := rand.New(rand.NewPCG(1, 2))
			want := map[ID]location{}
			var ids []ID
			for i := range tc.n {
				id := randomID(r)
				if i%7 == 0 && len(ids) > 0 { // replace an entry already there
					id = ids[r.IntN(len(ids))]
				} else {
					ids = append(ids, id)
				}
				l := location{pack: uint32(i), offset: r.Uint32(), length: r.Uint32(), rawLength: r.Uint32(), typ: BlobType(i % 2)}
				x.set(id, l)
				want[id] = l
			}
			if x.spilled() != tc.wantSpilled || x.spillErr != nil {
				t.Fatalf("spilled %v (error %v), want %v", x.spilled(), x.spillErr, tc.wantSpilled)
			}
			if x.len() != len(want) {
				t.Fatalf("len %d, want %d", x.len(), len(want))
			}
			for id, l := range want {
				if got, ok := x.get(id); !ok || got != l {
					t.Fatalf("get %s = %+v, %v; want %+v", id, got, ok, l)
				}
			}
			for range 1000 {
				if _, ok := x.get(randomID(r)); ok {
					t.Fatal("get of an ID never set found an entry")
				}
			}
			if x.spilled() {
				e := x.spill.entries
				for i := 1; i < len(e); i++ {
					if string(e[i-1].id[:]) >= string(e[i].id[:]) {
						t.Fatalf("spilled entries not sorted and unique at %d", i)
					}
				}
				// A process killed now leaves no file: the spill file was unlinked when made.
				for _, name := range spillNames {
					if _, err := os.Stat(name); !os.IsNotExist(err) {
						t.Errorf("spill file %s still has a name: %v", name, err)
					}
				}
			}
		})
	}
}

func TestIndexMemoryFor(t *testing.T) {
	for _, tc := range []struct {
		memoryMax string
		want      int64
	}{
		{"", DefaultIndexMemory},      // no cgroup v2
		{"max\n", DefaultIndexMemory}, // no limit
		{"536870912\n", 128 << 20},    // a 512 MiB agent: a quarter
		{"8589934592\n", DefaultIndexMemory},
		{"garbage", DefaultIndexMemory},
	} {
		if got := indexMemoryFor(tc.memoryMax); got != tc.want {
			t.Errorf("memory.max %q: budget %d, want %d", tc.memoryMax, got, tc.want)
		}
	}
}

// BenchmarkIndexMemory reports the heap an index of a million blobs takes, per blob, in memory
// and spilled (go test -run '^$' -bench IndexMemory ./backup/engine/repo/).
func BenchmarkIndexMemory(b *testing.B) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 1_000_000
	for _, tc := range []struct {
		name   string
		budget int64
	}{{"memory", 1 << 30}, {"spilled", 16 << 20}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				r := rand.New(rand.NewPCG(1, 2))
				before := heap()
				x := newBlobIndex(tc.budget, func() (*os.File, error) { return os.CreateTemp(b.TempDir(), "index-") })
				for i := range n {
					x.set(randomID(r), location{pack: uint32(i)})
				}
				b.ReportMetric(float64(heap()-before)/n, "heap-bytes/blob")
				x.close()
			}
		})
	}
}
