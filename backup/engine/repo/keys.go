package repo

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/scrypt"
)

// UserKey unlocks a repository: a passphrase (stretched with scrypt) or a raw 32-byte key. There
// is no default; a repository cannot be made or opened without one.
type UserKey struct {
	Passphrase string
	Raw        []byte
}

// Validate says what is wrong with the key, if anything.
func (k UserKey) Validate() error {
	switch {
	case k.Passphrase != "" && k.Raw != nil:
		return errors.New("give either a passphrase or a raw key, not both")
	case k.Raw != nil && len(k.Raw) != 32:
		return fmt.Errorf("a raw key must be 32 bytes, not %d", len(k.Raw))
	case k.Raw == nil && len(k.Passphrase) < 8:
		return errors.New("the passphrase must be at least 8 characters")
	}
	return nil
}

// scrypt parameters for new key files: about 100 ms and 32 MiB on a current core. Key files
// record their own, so these can grow without breaking old repositories.
const (
	scryptN = 1 << 15
	scryptR = 8
	scryptP = 1
)

// keyFile is the JSON of a keys/ID object: the master keys sealed under a key derived from the
// user key. Several key files can unlock one repository.
type keyFile struct {
	Version int    `json:"version"`
	KDF     string `json:"kdf"` // "scrypt" or "raw"
	N       int    `json:"n,omitempty"`
	R       int    `json:"r,omitempty"`
	P       int    `json:"p,omitempty"`
	Salt    []byte `json:"salt,omitempty"`
	// Sealed is the JSON of masterKeys, sealed with the derived key.
	Sealed []byte `json:"sealed"`
}

func (kf *keyFile) derive(k UserKey) ([]byte, error) {
	switch kf.KDF {
	case "raw":
		if k.Raw == nil {
			return nil, fmt.Errorf("%w (this key file needs a raw key, not a passphrase)", ErrWrongKey)
		}
		return k.Raw, nil
	case "scrypt":
		if k.Raw != nil {
			return nil, fmt.Errorf("%w (this key file needs a passphrase, not a raw key)", ErrWrongKey)
		}
		return scrypt.Key([]byte(k.Passphrase), kf.Salt, kf.N, kf.R, kf.P, 32)
	default:
		return nil, fmt.Errorf("unknown key derivation %q", kf.KDF)
	}
}

// wrapKeys seals the master keys under the user key.
func wrapKeys(mk *masterKeys, k UserKey) (data []byte, id ID, err error) {
	if err := k.Validate(); err != nil {
		return nil, id, err
	}
	kf := &keyFile{Version: FormatVersion, KDF: "raw"}
	if k.Raw == nil {
		kf.KDF, kf.N, kf.R, kf.P, kf.Salt = "scrypt", scryptN, scryptR, scryptP, make([]byte, 32)
		if _, err := rand.Read(kf.Salt); err != nil {
			return nil, id, err
		}
	}
	wrapKey, err := kf.derive(k)
	if err != nil {
		return nil, id, err
	}
	c, err := newCrypter(wrapKey, nil)
	if err != nil {
		return nil, id, err
	}
	plain, err := json.Marshal(mk)
	if err != nil {
		return nil, id, err
	}
	kf.Sealed = c.seal(nil, plain)
	data, err = json.Marshal(kf)
	if err != nil {
		return nil, id, err
	}
	return data, contentID(data), nil
}

// ErrWrongKey means no key file of the repository opens with the given user key.
var ErrWrongKey = errors.New("wrong key: no key of this repository opens with the given passphrase or key")

// unwrapKeys opens a key file with the user key; ErrWrongKey when it does not fit.
func unwrapKeys(data []byte, k UserKey) (*masterKeys, error) {
	kf := &keyFile{}
	if err := json.Unmarshal(data, kf); err != nil {
		return nil, fmt.Errorf("decoding key file: %w", err)
	}
	// Bound the work a hostile key file can ask for: scrypt needs 128*N*r bytes of memory.
	if kf.KDF == "scrypt" && (kf.N < 1<<10 || kf.N > 1<<20 || kf.R < 1 || kf.R > 32 || kf.P < 1 || kf.P > 16 ||
		128*kf.N*kf.R > 512<<20) {
		return nil, fmt.Errorf("key file has out-of-range scrypt parameters N=%d r=%d p=%d", kf.N, kf.R, kf.P)
	}
	wrapKey, err := kf.derive(k)
	if err != nil {
		return nil, err
	}
	c, err := newCrypter(wrapKey, nil)
	if err != nil {
		return nil, err
	}
	plain, err := c.open(nil, kf.Sealed)
	if err != nil {
		return nil, ErrWrongKey
	}
	mk := &masterKeys{}
	if err := json.Unmarshal(plain, mk); err != nil {
		return nil, fmt.Errorf("decoding master keys: %w", err)
	}
	if len(mk.Encryption) != 32 || len(mk.ID) != 32 || len(mk.Chunker) != 32 {
		return nil, errors.New("key file holds master keys of the wrong size")
	}
	return mk, nil
}
