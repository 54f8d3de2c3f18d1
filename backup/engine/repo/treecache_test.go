package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Trees are written to packs of their own and read a pack at a time: once one tree of a pack
// has been read, the others come from memory, even with the pack gone from the store.
func TestTreesArePackedApartAndCached(t *testing.T) {
	ctx := context.Background()
	s, r := newTestRepo(t)
	w := r.NewWriter(ctx, 2)
	var trees []ID
	data, err := w.Add(DataBlob, randomBytes(4<<10))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		id, err := w.Add(TreeBlob, []byte(fmt.Sprintf(`{"nodes":[{"name":"f%d"}]}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, id)
	}
	if _, err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	dataPack, _, _ := r.Lookup(data)
	treePack, _, _ := r.Lookup(trees[0])
	if dataPack == treePack {
		t.Fatal("a tree blob went into the pack of file data")
	}
	for _, id := range trees[1:] {
		if p, _, _ := r.Lookup(id); p != treePack {
			t.Fatalf("the trees of one session are in several packs (%s, %s)", p, treePack)
		}
	}

	if _, err := r.LoadBlob(ctx, trees[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, packKey(treePack)); err != nil {
		t.Fatal(err)
	}
	for i, id := range trees {
		got, err := r.LoadBlob(ctx, id)
		if err != nil {
			t.Fatalf("tree %d after its pack was read once: %v", i, err)
		}
		if want := fmt.Sprintf(`{"nodes":[{"name":"f%d"}]}`, i); string(got) != want {
			t.Fatalf("tree %d = %q, want %q", i, got, want)
		}
	}
	// Data blobs are not cached.
	if err := s.Delete(ctx, packKey(dataPack)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadBlob(ctx, data); err == nil {
		t.Fatal("a data blob was read from a deleted pack")
	}
}

func TestTreeCache(t *testing.T) {
	ctx := context.Background()
	pack := func(i int) ID { return ID{byte(i)} }
	bytesOf := func(n int) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { return make([]byte, n), nil }
	}

	t.Run("one fetch for concurrent readers", func(t *testing.T) {
		var c treeCache
		var fetches atomic.Int32
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := c.get(ctx, pack(1), span{0, 10}, func(context.Context) ([]byte, error) {
					fetches.Add(1)
					<-release
					return make([]byte, 10), nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		close(release)
		wg.Wait()
		if n := fetches.Load(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
	})

	t.Run("errors are not cached", func(t *testing.T) {
		var c treeCache
		boom := errors.New("boom")
		if _, err := c.get(ctx, pack(1), span{0, 10}, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if _, err := c.get(ctx, pack(1), span{0, 10}, bytesOf(10)); err != nil {
			t.Fatalf("the second read got the first one's error: %v", err)
		}
	})

	t.Run("bounded, oldest evicted", func(t *testing.T) {
		var c treeCache
		n := treeCacheBytes / 4
		for i := range 6 {
			if _, err := c.get(ctx, pack(i), span{0, uint32(n)}, bytesOf(n)); err != nil {
				t.Fatal(err)
			}
		}
		if c.bytes > treeCacheBytes {
			t.Errorf("cache holds %d bytes, over its %d bound", c.bytes, treeCacheBytes)
		}
		if _, ok := c.spans[pack(0)]; ok {
			t.Error("the oldest span was kept")
		}
		if _, ok := c.spans[pack(5)]; !ok {
			t.Error("the newest span was evicted")
		}
	})

	t.Run("a changed span is fetched again", func(t *testing.T) {
		var c treeCache
		c.get(ctx, pack(1), span{0, 10}, bytesOf(10))
		got, err := c.get(ctx, pack(1), span{0, 20}, bytesOf(20))
		if err != nil || len(got) != 20 {
			t.Fatalf("got %d bytes, %v; want the new 20-byte span", len(got), err)
		}
		if c.bytes != 20 {
			t.Errorf("cache counts %d bytes, want 20", c.bytes)
		}
	})
}
