package treesum

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Sum is the hash of a tree and what it covered.
type Sum struct {
	Hex   string
	Files int
	Bytes int64
}

// String is the line the test application prints: "tree-sum HEX files N bytes B".
func (s Sum) String() string {
	return fmt.Sprintf("tree-sum %s files %d bytes %d", s.Hex, s.Files, s.Bytes)
}

// Of hashes every regular file under dir, in lexical walk order: a line "PATH SIZE SHA256"
// per file, PATH relative to dir. Links, directories and their modes are not covered.
func Of(dir string) (Sum, error) {
	h := sha256.New()
	var s Sum
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fh := sha256.New()
		n, err := io.Copy(fh, f)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		fmt.Fprintf(h, "%s %d %x\n", rel, n, fh.Sum(nil))
		s.Files++
		s.Bytes += n
		return nil
	})
	if err != nil {
		return Sum{}, fmt.Errorf("hashing the tree %s: %w", dir, err)
	}
	s.Hex = hex.EncodeToString(h.Sum(nil))
	return s, nil
}
