package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/zeebo/blake3"
)

// ID names a blob (keyed BLAKE3 of its plaintext) or a file of the repository.
type ID [32]byte

// String is the ID in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the ID is unset.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses a hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%q is not a 64-digit hex ID", s)
	}
	copy(id[:], b)
	return id, nil
}

// MarshalText implements encoding.TextMarshaler, so IDs are hex in JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// masterKeys are a repository's secrets, made once at init and stored only wrapped by a user
// key (see keys.go).
type masterKeys struct {
	// Encryption is the AES-256-GCM key of every object and blob.
	Encryption []byte `json:"encryption"`
	// ID keys the BLAKE3 hash that names blobs, so that blob IDs reveal nothing about
	// content to someone without the key.
	ID []byte `json:"id"`
	// Chunker keys the content-defined chunker's gear table, so that chunk boundaries do
	// not reveal content either.
	Chunker []byte `json:"chunker"`
}

func newMasterKeys() (*masterKeys, error) {
	k := &masterKeys{Encryption: make([]byte, 32), ID: make([]byte, 32), Chunker: make([]byte, 32)}
	for _, b := range [][]byte{k.Encryption, k.ID, k.Chunker} {
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// crypter seals and opens data with AES-256-GCM. Sealed data is nonce (12 bytes) | ciphertext |
// tag (16 bytes): 28 bytes of overhead.
type crypter struct {
	aead  cipher.AEAD
	idKey []byte
	// hashers recycles keyed BLAKE3 hashers: each holds an 8 KiB buffer, and a new one per
	// blob was a fifth of a restore's allocations.
	hashers sync.Pool
}

const sealOverhead = 12 + 16

func newCrypter(key, idKey []byte) (*crypter, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("making the cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("making the cipher: %w", err)
	}
	return &crypter{aead: aead, idKey: idKey}, nil
}

// seal appends the sealed plaintext to dst.
func (c *crypter) seal(dst, plaintext []byte) []byte {
	nonceAt := len(dst)
	dst = append(dst, make([]byte, c.aead.NonceSize())...)
	if _, err := rand.Read(dst[nonceAt:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return c.aead.Seal(dst, dst[nonceAt:], plaintext, nil)
}

// errAuth means sealed data was damaged or sealed under another key.
var errAuth = errors.New("authentication failed: the data is damaged or was encrypted with another key")

// open appends the plaintext of sealed to dst.
func (c *crypter) open(dst, sealed []byte) ([]byte, error) {
	ns := c.aead.NonceSize()
	if len(sealed) < ns+c.aead.Overhead() {
		return nil, fmt.Errorf("sealed data of %d bytes is too short", len(sealed))
	}
	out, err := c.aead.Open(dst, sealed[:ns], sealed[ns:], nil)
	if err != nil {
		return nil, errAuth
	}
	return out, nil
}

// contentID names a stored object by the unkeyed BLAKE3-256 hash of its bytes as stored, so
// that anyone can check an object against its name without the key (check --read-data, bit
// rot). BLAKE3 rather than SHA-256 because packs are hashed whole: it is twice as fast here
// (docs/performance.md).
func contentID(data []byte) ID {
	return ID(blake3.Sum256(data))
}

// blobID names plaintext data.
func (c *crypter) blobID(data []byte) ID {
	h, _ := c.hashers.Get().(*blake3.Hasher)
	if h == nil {
		var err error
		if h, err = blake3.NewKeyed(c.idKey); err != nil {
			panic(err) // the key is always 32 bytes
		}
	}
	h.Write(data)
	var id ID
	h.Sum(id[:0])
	h.Reset() // back to the keyed initial state
	c.hashers.Put(h)
	return id
}
