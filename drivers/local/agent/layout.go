package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is a node's storage root and the places in it (see the package comment).
type Root string

func (r Root) snapshots() string         { return filepath.Join(string(r), ".stork", "snapshots") }
func (r Root) snapshot(id string) string { return filepath.Join(r.snapshots(), id) }
func (r Root) work(uid string) string    { return filepath.Join(string(r), ".stork", "work", uid) }
func (r Root) restoredMark(uid string) string {
	return filepath.Join(string(r), ".stork", "restored", uid)
}
func (r Root) volume(name string) string { return filepath.Join(string(r), "volumes", name) }

// repoCache holds the repositories' snapshot manifests between tasks (transfer.Open).
func (r Root) repoCache() string { return filepath.Join(string(r), ".stork", "cache", "repos") }

// probe is per node: a root may be one directory seen by several nodes' agents (a shared
// disk, or the test tier's nodes on one machine), and each agent's probe must be its own.
func (r Root) probe(node string) string { return filepath.Join(string(r), ".stork", "probe-"+node) }

// within checks that path is a directory inside the root, also after symbolic links are
// resolved: a PersistentVolume's path is user input, and the agent must not copy (or delete)
// anything outside the storage it was given.
func (r Root) within(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("volume path %q is not absolute", path)
	}
	root, err := filepath.EvalSymlinks(string(r))
	if err != nil {
		return "", fmt.Errorf("resolving the storage root %s: %w", r, err)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("resolving volume path %s: %w", path, err)
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("volume path %s is outside the storage root %s of this agent", path, r)
	}
	if strings.HasPrefix(rel, ".stork/") || rel == ".stork" {
		return "", fmt.Errorf("volume path %s is inside the agent's own directory %s", path, filepath.Join(string(r), ".stork"))
	}
	info, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !info.IsDir() {
		return "", fmt.Errorf("volume path %s is not a directory", path)
	}
	return real, nil
}

// validName accepts IDs and names that are one path element: they come from VolumeTasks.
func validName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return fmt.Errorf("%s %q is not a valid file name", what, name)
	}
	return nil
}

// publish makes a finished copy visible: the file system is synced (the copy's data must be
// on disk before its name says it is complete), then work is renamed to final and the rename
// made durable.
func publish(work, final string) error {
	if err := syncFS(work); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	if err := os.Rename(work, final); err != nil {
		return fmt.Errorf("publishing %s: %w", final, err)
	}
	return syncDir(filepath.Dir(final))
}

func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing the file system of %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
