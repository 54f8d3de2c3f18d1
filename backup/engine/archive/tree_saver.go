package archive

import (
	"context"
	"path"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"stork.dev/stork/backup/engine/repo"
)

// The tree saver: a directory's entries, its subdirectories and files saved in parallel (within
// the bounds of dirSlots and fileSlots, shared by the whole backup), then its tree blob.

// saveDir stores one directory and returns its tree blob's ID. parent is the directory's tree
// in the parent snapshot, if any, and parentID that tree's blob.
func (a *archiver) saveDir(ctx context.Context, abs, rel string, parent *Tree, parentID *repo.ID, self *Node) (repo.ID, error) {
	tree, err := a.listDir(abs, rel, self, parent)
	if err != nil {
		return repo.ID{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range tree.Nodes {
		n := &tree.Nodes[i]
		p, relPath := filepath.Join(abs, n.Name), path.Join(rel, n.Name)
		prev := parent.find(n.Name)
		var err error
		switch n.Type {
		case TypeDir:
			err = a.saveSubdir(gctx, g, n, p, relPath, prev)
		case TypeFile:
			err = a.saveFileNode(gctx, g, n, p, relPath, prev)
		}
		if err != nil {
			if werr := g.Wait(); werr != nil {
				return repo.ID{}, werr
			}
			return repo.ID{}, err
		}
	}
	if err := g.Wait(); err != nil {
		return repo.ID{}, err
	}
	// A directory whose every entry is as the parent recorded it is the parent's tree blob:
	// neither encoded nor hashed again (a tenth of the CPU of an unchanged backup).
	if parentID != nil && tree.same(parent) && a.r.Has(*parentID) {
		a.countBytes(tree)
		return *parentID, nil
	}
	return a.saveTree(tree)
}

// listDir reads a directory's entries, sorted by name, leaving out the excluded ones: from the
// prescan if it has the directory, else from the file system. parent is the directory's tree
// in the parent snapshot, if any.
func (a *archiver) listDir(abs, rel string, self *Node, parent *Tree) (*Tree, error) {
	excluded := func(name string) bool { return a.opts.Exclude != nil && a.opts.Exclude(path.Join(rel, name)) }
	entries, prescanned := a.opts.Prescan.take(abs)
	if !prescanned {
		var err error
		if entries, err = statDir(abs, excluded); err != nil {
			return nil, err
		}
	}
	tree := &Tree{Nodes: make([]Node, 0, len(entries)), Root: self}
	for i := range entries {
		e := &entries[i]
		if prescanned && excluded(e.name) {
			continue // the prescan does not know what is excluded
		}
		node, err := nodeFromStat(&e.st, filepath.Join(abs, e.name), e.name, parent.find(e.name))
		if err != nil {
			return nil, err
		}
		tree.Nodes = append(tree.Nodes, node)
	}
	return tree, nil
}

// saveSubdir saves the subdirectory n (at p) and sets its subtree: in a goroutine of g when a
// directory slot is free, else right here, since waiting for a slot while holding one could
// deadlock. prev is its entry in the parent snapshot, if any.
func (a *archiver) saveSubdir(ctx context.Context, g *errgroup.Group, n *Node, p, rel string, prev *Node) error {
	var prevTree *repo.ID
	if prev != nil && prev.Type == TypeDir {
		prevTree = prev.Subtree
	}
	sub := func(ctx context.Context) error {
		var sub *Tree
		if prevTree != nil {
			var err error
			if sub, err = loadTree(ctx, a.r, *prevTree); err != nil {
				return err
			}
		}
		id, err := a.saveDir(ctx, p, rel, sub, prevTree, nil)
		n.Subtree = &id
		a.dirs.Add(1)
		return err
	}
	select {
	case a.dirSlots <- struct{}{}:
		g.Go(func() error { defer func() { <-a.dirSlots }(); return sub(ctx) })
		return nil
	default:
		return sub(ctx)
	}
}

// saveTree stores a directory's tree blob, once every entry has its content, and counts the
// bytes of its files.
func (a *archiver) saveTree(tree *Tree) (repo.ID, error) {
	a.countBytes(tree)
	data, err := encodeTree(tree)
	if err != nil {
		return repo.ID{}, err
	}
	return a.w.Add(repo.TreeBlob, data)
}

// countBytes adds the sizes of a directory's files to the snapshot's total.
func (a *archiver) countBytes(tree *Tree) {
	for _, n := range tree.Nodes {
		if n.Type == TypeFile {
			a.bytesAll.Add(n.Size)
		}
	}
}
