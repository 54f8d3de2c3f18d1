package archive

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPrescan backs up a tree whose files are touched after a prescan listed it: an entry the
// backup took from the prescan keeps the modification time the prescan saw, one it listed
// itself has the new one. That shows which listings were used, and that every other entry
// is the same either way.
func TestPrescan(t *testing.T) {
	// Depth first in name order: the root (3 entries), a (2), b (2).
	files := []string{"a/1", "a/2", "b/1", "b/2", "top"}
	cases := []struct {
		name    string
		budget  int
		root    func(src string) string // the tree the prescan lists
		exclude string
		// unreadable is a directory the prescan cannot list (as lost+found is to a mover that
		// is not root): it skips it and lists the rest.
		unreadable string
		fresh      []string // files the backup must have listed itself
	}{
		{name: "whole tree", budget: prescanMax, fresh: nil},
		{name: "budget ends before b", budget: 5, fresh: []string{"b/1", "b/2"}},
		{name: "budget ends before the root", budget: 2, fresh: files},
		{name: "another tree", budget: prescanMax, root: func(src string) string { return filepath.Join(src, "a") }, fresh: files},
		{name: "excluded entries stay out", budget: prescanMax, exclude: "b"},
		{name: "a directory it cannot read", budget: prescanMax, unreadable: "a", fresh: []string{"a/1", "a/2"}},
	}
	old := time.Date(2021, 3, 4, 5, 6, 7, 8, time.UTC)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			r := newRepo(t)
			src := t.TempDir()
			for _, f := range files {
				p := filepath.Join(src, f)
				write(t, p, []byte(f), 0o644)
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
			}
			root := src
			if c.root != nil {
				root = c.root(src)
			}
			list := func(dir string) ([]dirEntry, error) {
				if c.unreadable != "" && dir == filepath.Join(src, c.unreadable) {
					return nil, os.ErrPermission
				}
				return statDir(dir, nil)
			}
			pre := startPrescan(ctx, root, c.budget, list)
			<-pre.done // the whole walk, where a backup would stop it when it starts
			pre.Stop()
			touched := old.Add(time.Hour)
			for _, f := range files {
				if err := os.Chtimes(filepath.Join(src, f), touched, touched); err != nil {
					t.Fatal(err)
				}
			}
			opts := BackupOptions{Prescan: pre}
			if c.exclude != "" {
				opts.Exclude = func(rel string) bool { return rel == c.exclude }
			}
			_, snap, err := Backup(ctx, r, src, opts)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]time.Time{}
			if err := List(ctx, r, snap.Tree, func(rel string, n *Node) error {
				if n.Type == TypeFile {
					got[rel] = n.MTime
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				want := old
				switch {
				case c.exclude != "" && filepath.Dir(f) == c.exclude:
					if _, ok := got[f]; ok {
						t.Errorf("%s is in the snapshot, though excluded", f)
					}
					continue
				case slices.Contains(c.fresh, f):
					want = touched
				}
				if !got[f].Equal(want) {
					t.Errorf("%s: mtime %v, want %v", f, got[f], want)
				}
			}
		})
	}
}
