package repo

import (
	"os"
	"path/filepath"
	"strings"
)

// A diskCache keeps sealed snapshot manifests on local disk (OpenOptions.CacheDir), so that a
// process that opens the repository anew for each backup, as storkctl does, does not read every
// manifest from the store to find its parent: a year of hourly backups is 8,760 manifests, one
// request each, on every backup. restic and kopia keep such a cache too.
//
// Manifests are safe to cache: named by the hash of their sealed bytes, never changed, and
// checked against their name and opened with the key when read back (decodeJSON), so a damaged
// or planted file is read from the store instead. They stay sealed on disk: the cache holds
// nothing the bucket does not. Errors writing the cache are ignored: it only saves requests.
type diskCache struct{ dir string } // "": no cache

func (c diskCache) path(key string) string { return filepath.Join(c.dir, filepath.FromSlash(key)) }

// has says whether key is cached, without reading it.
func (c diskCache) has(key string) bool {
	if c.dir == "" {
		return false
	}
	_, err := os.Stat(c.path(key))
	return err == nil
}

func (c diskCache) get(key string) ([]byte, bool) {
	if c.dir == "" {
		return nil, false
	}
	b, err := os.ReadFile(c.path(key))
	return b, err == nil
}

// put writes key through a temporary file renamed into place: a process killed half-way
// leaves no half-written entry under the key's name.
func (c diskCache) put(key string, data []byte) {
	if c.dir == "" {
		return
	}
	p := c.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
}

// prune removes the entries under prefix (a directory such as "snapshots") that keep refuses,
// and temporary files left by a killed process.
func (c diskCache) prune(prefix string, keep func(name string) bool) {
	if c.dir == "" {
		return
	}
	dir := c.path(prefix)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") || !keep(e.Name()) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
