package main

// Checking a restored tree against the source, file by file.

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

type fileSum struct {
	size int64
	sum  [32]byte
}

// sumTree hashes every regular file under root, keyed by slash path; directories get a zero entry.
func sumTree(root string) (map[string]fileSum, error) {
	sums := map[string]fileSum{}
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			sums[filepath.ToSlash(rel)+"/"] = fileSum{}
		case d.Type().IsRegular():
			paths = append(paths, rel)
		default:
			return fmt.Errorf("%s: unexpected file type %v", p, d.Type())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(runtime.NumCPU())
	for _, rel := range paths {
		g.Go(func() error {
			f, err := os.Open(filepath.Join(root, rel))
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			n, err := io.Copy(h, f)
			if err != nil {
				return err
			}
			s := fileSum{size: n}
			h.Sum(s.sum[:0])
			mu.Lock()
			sums[filepath.ToSlash(rel)] = s
			mu.Unlock()
			return nil
		})
	}
	return sums, g.Wait()
}

// compareSums describes how got differs from want, or returns "".
func compareSums(want, got map[string]fileSum) string {
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case g.size != w.size:
			diffs = append(diffs, fmt.Sprintf("%s: %d bytes, want %d", p, g.size, w.size))
		case g.sum != w.sum:
			diffs = append(diffs, p+": content differs")
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "unexpected "+p)
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	sort.Strings(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("… %d differences in all", len(diffs)))
	}
	return strings.Join(diffs, "; ")
}
