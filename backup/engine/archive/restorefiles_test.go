package archive

import (
	"reflect"
	"testing"

	"stork.dev/stork/backup/engine/repo"
)

func TestSplitByOffset(t *testing.T) {
	// entries at the given offsets, each length bytes long, in the order given
	entries := func(length uint32, offsets ...uint32) []repo.PackEntry {
		var es []repo.PackEntry
		for _, o := range offsets {
			es = append(es, repo.PackEntry{Offset: o, Length: length})
		}
		return es
	}
	offsets := func(runs [][]repo.PackEntry) [][]uint32 {
		var out [][]uint32
		for _, r := range runs {
			var os []uint32
			for _, e := range r {
				os = append(os, e.Offset)
			}
			out = append(out, os)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		entries []repo.PackEntry
		size    int64
		want    [][]uint32
	}{
		{"one entry", entries(10, 0), 100, [][]uint32{{0}}},
		{"all in one run under the size", entries(10, 20, 0, 10), 100, [][]uint32{{0, 10, 20}}},
		{"cut when a run reaches the size", entries(10, 30, 0, 20, 10, 40), 20, [][]uint32{{0, 10}, {20, 30}, {40}}},
		{"an entry larger than the size is a run of its own", entries(50, 100, 0, 50), 20, [][]uint32{{0}, {50}, {100}}},
		{"no entries", nil, 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := offsets(splitByOffset(tc.entries, tc.size)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("runs by offset: got %v, want %v", got, tc.want)
			}
		})
	}
}
