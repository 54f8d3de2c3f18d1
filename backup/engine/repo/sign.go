package repo

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// Sign returns the repository key's MAC (HMAC-SHA-256) of data for a purpose, e.g. "backup
// record". Its key is derived from the master encryption key with HKDF and the purpose as
// info, so a signature is never valid for another purpose, and it is distinct from the key
// that encrypts (AES-GCM already authenticates each object; a signature binds a whole document
// a reader checks on its own, such as a backup record a disaster-recovery site verifies before
// restoring, to the repository's key).
func (r *Repository) Sign(purpose string, data []byte) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, r.keys.Encryption, nil, "stork.dev signature: "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the %s signing key: %w", purpose, err)
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil), nil
}

// VerifySignature reports whether sig is the repository key's signature of data for purpose.
func (r *Repository) VerifySignature(purpose string, data, sig []byte) (bool, error) {
	want, err := r.Sign(purpose, data)
	if err != nil {
		return false, err
	}
	return hmac.Equal(want, sig), nil
}
