package archive

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"sync"
	"testing"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	resticchunker "github.com/restic/chunker"
	"github.com/zeebo/blake3"
)

// These benchmarks are the measurements behind the engine's choices (docs/performance.md):
// which content-defined chunker and which keyed hash. Run: make bench-primitives.

// benchData is made on first use, so that plain `go test` does not pay for it.
var benchData = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<20)
	rand.Read(b)
	return b
})

func BenchmarkChunker(b *testing.B) {
	benchData := benchData()
	key := bytes.Repeat([]byte{7}, 32)
	b.Run("fastcdc-keyed-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(benchData)))
		for range b.N {
			c, err := chunkers.NewChunker("fastcdc-v1.0.0", bytes.NewReader(benchData),
				&chunkers.ChunkerOpts{MinSize: 256 << 10, NormalSize: 1 << 20, MaxSize: 4 << 20, Key: key})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				chunk, err := c.Next()
				n += len(chunk)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if n != len(benchData) {
				b.Fatalf("chunked %d of %d bytes", n, len(benchData))
			}
		}
	})
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

// BenchmarkChunkerDedup measures how much of an edited copy each chunker finds again: 64 MiB of
// random data, then 4 insertions of 100 bytes and 4 overwrites of 4 KiB at fixed places. It
// reports the share of the copy's bytes in chunks the original has too (higher is better).
func BenchmarkChunkerDedup(b *testing.B) {
	orig := benchData()
	edited := append([]byte(nil), orig...)
	for i := range 4 {
		at := (i*2 + 1) * len(orig) / 10
		copy(edited[at:], bytes.Repeat([]byte{byte(i)}, 4096))
		ins := (i*2 + 2) * len(edited) / 10
		edited = append(edited[:ins], append(bytes.Repeat([]byte{0xAB}, 100), edited[ins:]...)...)
	}
	key := bytes.Repeat([]byte{7}, 32)
	split := map[string]func(data []byte, fn func([]byte)){
		"fastcdc-keyed-1MiB": func(data []byte, fn func([]byte)) {
			c, _ := chunkers.NewChunker("fastcdc-v1.0.0", bytes.NewReader(data),
				&chunkers.ChunkerOpts{MinSize: 256 << 10, NormalSize: 1 << 20, MaxSize: 4 << 20, Key: key})
			for {
				chunk, err := c.Next()
				fn(chunk)
				if err != nil {
					return
				}
			}
		},
		"restic-rabin-1MiB": func(data []byte, fn func([]byte)) {
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
	for name, fn := range split {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				seen := map[[32]byte]bool{}
				fn(orig, func(c []byte) { seen[sha256.Sum256(c)] = true })
				var reused, total int
				fn(edited, func(c []byte) {
					total += len(c)
					if seen[sha256.Sum256(c)] {
						reused += len(c)
					}
				})
				b.ReportMetric(100*float64(reused)/float64(total), "%reused")
			}
		})
	}
}
