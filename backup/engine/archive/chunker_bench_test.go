package archive

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/jc"       // registers jc
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/ultracdc" // registers ultracdc
	resticchunker "github.com/restic/chunker"
	"github.com/zeebo/blake3"
)

// These benchmarks are the measurements behind the engine's choices (docs/performance.md):
// which content-defined chunker and which keyed hash. Run: make bench-primitives.

// benchData is made on first use, so that plain `go test` does not pay for it; from a fixed
// seed, so that the dedup shares below are the same in every run.
var benchData = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<20)
	mrand.NewChaCha8([32]byte{7}).Read(b)
	return b
})

// benchChunkers are the go-cdc-chunkers algorithms compared, keyed, at the repository's sizes.
// jc-v1.0.0 scales its masks to the average size; jc-v1.1.0 keeps the paper's (8 KiB).
var benchChunkers = []string{"fastcdc-v1.0.0", "jc-v1.0.0", "jc-v1.1.0", "ultracdc-v1.0.0"}

// cdcSplit cuts data with the keyed chunker alg at 256 KiB / 1 MiB / 4 MiB and calls fn with each
// chunk.
func cdcSplit(b testing.TB, alg string, data, key []byte, fn func([]byte)) {
	c, err := chunkers.NewChunker(alg, bytes.NewReader(data),
		&chunkers.ChunkerOpts{MinSize: 256 << 10, NormalSize: 1 << 20, MaxSize: 4 << 20, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	for {
		chunk, err := c.Next()
		if len(chunk) > 0 {
			fn(chunk)
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunker(b *testing.B) {
	benchData := benchData()
	key := bytes.Repeat([]byte{7}, 32)
	for _, alg := range benchChunkers {
		b.Run(alg+"-keyed-1MiB", func(b *testing.B) {
			b.SetBytes(int64(len(benchData)))
			for range b.N {
				n := 0
				cdcSplit(b, alg, benchData, key, func(c []byte) { n += len(c) })
				if n != len(benchData) {
					b.Fatalf("chunked %d of %d bytes", n, len(benchData))
				}
			}
		})
	}
	b.Run("restic-rabin-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(benchData)))
		buf := make([]byte, resticchunker.MaxSize)
		for range b.N {
			c := resticchunker.New(bytes.NewReader(benchData), resticchunker.Pol(0x3DA3358B4DC173))
			n := 0
			for {
				chunk, err := c.Next(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n += int(chunk.Length)
			}
			if n != len(benchData) {
				b.Fatalf("chunked %d of %d bytes", n, len(benchData))
			}
		}
	})
}

func BenchmarkKeyedHash(b *testing.B) {
	key := bytes.Repeat([]byte{7}, 32)
	chunk := benchData()[:1<<20]
	b.Run("blake3-keyed", func(b *testing.B) {
		b.SetBytes(int64(len(chunk)))
		for range b.N {
			h, _ := blake3.NewKeyed(key)
			h.Write(chunk)
			h.Sum(nil)
		}
	})
	b.Run("hmac-sha256", func(b *testing.B) {
		b.SetBytes(int64(len(chunk)))
		for range b.N {
			h := hmac.New(sha256.New, key)
			h.Write(chunk)
			h.Sum(nil)
		}
	})
}

// BenchmarkChunkerDedup measures how much of an edited copy each chunker finds again, in
// 64 MiB of random data edited three ways: "small" (4 insertions of 100 bytes and 4 overwrites
// of 4 KiB at fixed places), "inserts" (16 insertions of 1 B to 64 KiB at random places) and
// "deletes" (16 deletions of 1 B to 64 KiB). It reports the share of each copy's bytes in
// chunks the original has too (higher is better) and the average chunk size. The random edits
// are why the repository keeps FastCDC (2026-12-07, docs/performance.md): JC with masks scaled
// to 1 MiB (jc-v1.0.0) chunks 1.8× faster but found 57% and 51% of those copies again against
// FastCDC's 70% and 69%, and with the paper's 8 KiB masks (jc-v1.1.0, 4× faster) 21% and 14%.
func BenchmarkChunkerDedup(b *testing.B) {
	orig := benchData()
	small := append([]byte(nil), orig...)
	for i := range 4 {
		at := (i*2 + 1) * len(orig) / 10
		copy(small[at:], bytes.Repeat([]byte{byte(i)}, 4096))
		ins := (i*2 + 2) * len(small) / 10
		small = slices.Insert(small, ins, bytes.Repeat([]byte{0xAB}, 100)...)
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	inserts := append([]byte(nil), orig...)
	for range 16 {
		ins := make([]byte, 1+r.IntN(64<<10))
		for i := range ins {
			ins[i] = byte(r.Uint32())
		}
		inserts = slices.Insert(inserts, r.IntN(len(inserts)), ins...)
	}
	deletes := append([]byte(nil), orig...)
	for range 16 {
		at := r.IntN(len(deletes) - 64<<10)
		deletes = slices.Delete(deletes, at, at+1+r.IntN(64<<10))
	}
	edits := []struct {
		name string
		data []byte
	}{{"small", small}, {"inserts", inserts}, {"deletes", deletes}}

	key := bytes.Repeat([]byte{7}, 32)
	// Each takes the benchmark it runs in: Fatal must come from that benchmark's goroutine.
	split := map[string]func(b *testing.B, data []byte, fn func([]byte)){
		"restic-rabin-1MiB": func(_ *testing.B, data []byte, fn func([]byte)) {
			c := resticchunker.New(bytes.NewReader(data), resticchunker.Pol(0x3DA3358B4DC173))
			buf := make([]byte, resticchunker.MaxSize)
			for {
				chunk, err := c.Next(buf)
				if err != nil {
					return
				}
				fn(chunk.Data)
			}
		},
	}
	for _, alg := range benchChunkers {
		split[alg+"-keyed-1MiB"] = func(b *testing.B, data []byte, fn func([]byte)) { cdcSplit(b, alg, data, key, fn) }
	}
	for name, fn := range split {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				seen := map[[32]byte]bool{}
				chunks := 0
				fn(b, orig, func(c []byte) { seen[sha256.Sum256(c)] = true; chunks++ })
				b.ReportMetric(float64(len(orig)>>10)/float64(chunks), "KiB/chunk")
				for _, e := range edits {
					var reused, total int
					fn(b, e.data, func(c []byte) {
						total += len(c)
						if seen[sha256.Sum256(c)] {
							reused += len(c)
						}
					})
					b.ReportMetric(100*float64(reused)/float64(total), "%reused-"+e.name)
				}
			}
		})
	}
}
