package archive

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// walkTrees visits every tree reachable from the repository's snapshots once, with the path
// it was first met at. A snapshot that cannot be read goes to bad; a tree that cannot be
// loaded goes to fn with its error.
func walkTrees(ctx context.Context, r *repo.Repository, bad func(snapshot string, err error) error,
	fn func(snap repo.ID, id repo.ID, rel string, t *Tree, err error) error) error {
	seen := map[repo.ID]bool{}
	var visit func(snap, id repo.ID, rel string) error
	visit = func(snap, id repo.ID, rel string) error {
		if seen[id] {
			return nil
		}
		seen[id] = true
		t, err := loadTree(ctx, r, id)
		if err := fn(snap, id, rel, t, err); err != nil || t == nil {
			return err
		}
		for _, n := range t.Nodes {
			if n.Type == TypeDir {
				if err := visit(snap, *n.Subtree, path.Join(rel, n.Name)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// Snapshots are listed before the index is brought up to date (RefreshIndex reads only what
	// changed): a snapshot is written after the index files of everything it refers to, so
	// every snapshot listed here is covered.
	var snaps []string
	err := r.Store().List(ctx, "snapshots/", func(o objstore.Object) error {
		snaps = append(snaps, o.Key)
		return nil
	})
	if err != nil {
		return err
	}
	if err := r.RefreshIndex(ctx); err != nil {
		return err
	}
	for _, key := range snaps {
		id, err := repo.ParseID(strings.TrimPrefix(key, "snapshots/"))
		if err != nil {
			if err := bad(key, err); err != nil {
				return err
			}
			continue
		}
		s, err := r.LoadSnapshot(ctx, id)
		if errors.Is(err, objstore.ErrNotFound) {
			continue // forgotten meanwhile
		}
		if err != nil {
			if err := bad(key, err); err != nil {
				return err
			}
			continue
		}
		if err := visit(id, s.Tree, ""); err != nil {
			return err
		}
	}
	return nil
}

// Referenced returns every blob the repository's snapshots reference: their trees and the
// content of their files. It is prune's view of what must be kept, so it fails rather than
// return a partial set when something cannot be read.
func Referenced(ctx context.Context, r *repo.Repository) (repo.BlobSet, error) {
	set := repo.BlobSet{}
	fail := func(snapshot string, err error) error { return fmt.Errorf("reading %s: %w", snapshot, err) }
	err := walkTrees(ctx, r, fail, func(snap, id repo.ID, rel string, t *Tree, err error) error {
		if err != nil {
			return fmt.Errorf("snapshot %s, directory /%s: %w", snap, rel, err)
		}
		set[id] = struct{}{}
		for _, n := range t.Nodes {
			for _, c := range n.Content {
				set[c] = struct{}{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finding the data snapshots use (prune deletes nothing until every snapshot can be read): %w", err)
	}
	return set, nil
}

// Check verifies the repository (repo.Check) and every snapshot's trees: each decodes, and each
// blob a file needs is indexed.
func Check(ctx context.Context, r *repo.Repository, opts repo.CheckOptions) (*repo.CheckReport, error) {
	rep, err := r.Check(ctx, opts)
	if err != nil {
		return nil, err
	}
	// repo.Check reported snapshots that do not load.
	skip := func(string, error) error { return nil }
	err = walkTrees(ctx, r, skip, func(snap, id repo.ID, rel string, t *Tree, err error) error {
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Errorf("snapshot %s, directory /%s: %w", snap.String()[:12], rel, err))
			return nil
		}
		for _, n := range t.Nodes {
			for _, c := range n.Content {
				if _, _, ok := r.Lookup(c); !ok {
					rep.Problems = append(rep.Problems, fmt.Errorf("snapshot %s, file /%s: blob %s is not in the index", snap.String()[:12], path.Join(rel, n.Name), c))
					break
				}
			}
		}
		return nil
	})
	return rep, err
}
