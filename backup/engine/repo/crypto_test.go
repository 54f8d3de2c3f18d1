package repo

import (
	"testing"

	"github.com/zeebo/blake3"
)

// Hashers are recycled: every ID must still be the keyed hash of its data alone, whatever
// was hashed before with the same hasher.
func TestBlobIDRecycledHashers(t *testing.T) {
	key := randomBytes(32)
	c, err := newCrypter(randomBytes(32), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 1024, 8192, 8193, 100 << 10, 3, 1 << 20, 0} {
		data := randomBytes(n)
		h, _ := blake3.NewKeyed(key)
		h.Write(data)
		var want ID
		h.Sum(want[:0])
		for i := range 2 {
			if got := c.blobID(data); got != want {
				t.Fatalf("blobID of %d bytes (call %d) = %s, want the fresh keyed hash %s", n, i, got, want)
			}
		}
	}
}
