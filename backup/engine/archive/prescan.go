package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// Prescan lists a tree while its repository is being opened. Opening a repository derives the
// key from the passphrase (scrypt with 32 MiB, by design: about 165 ms of one core on the
// machine of docs/performance.md) and loads the index, and meanwhile the other core has nothing
// to do. A backup given the prescan takes each directory's listing (names and lstat) from it
// instead of reading the directory again; a directory the prescan did not reach, or could not
// read whole, is listed by the backup as usual, which reports whatever is wrong with it.
//
// The prescan walks depth first in name order, as the backup does, and stops when the backup
// starts or after prescanMax entries, so that what it holds stays small (about 190 bytes an
// entry). Its listings are a few hundred milliseconds older than the backup's own would be:
// a backup of a live tree sees each file at some moment during the backup either way.
type Prescan struct {
	root   string
	list   func(dir string) ([]dirEntry, error) // statDir, but for tests
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	dirs map[string][]dirEntry // by absolute path
}

// prescanMax bounds the entries a prescan holds: about 12 MiB, more than it lists in the time
// a key derivation takes.
const prescanMax = 1 << 16

// dirEntry is a directory entry with its lstat.
type dirEntry struct {
	name string
	st   unix.Stat_t
}

// StartPrescan starts listing the tree at dir in the background. Give it to Backup through
// BackupOptions.Prescan, and Stop it when done (Backup stops it too).
func StartPrescan(ctx context.Context, dir string) *Prescan {
	return startPrescan(ctx, dir, prescanMax, func(dir string) ([]dirEntry, error) { return statDir(dir, nil) })
}

// startPrescan is StartPrescan holding at most budget entries, listing directories with list.
func startPrescan(ctx context.Context, dir string, budget int, list func(string) ([]dirEntry, error)) *Prescan {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prescan{list: list, cancel: cancel, done: make(chan struct{}), dirs: map[string][]dirEntry{}}
	abs, err := filepath.Abs(dir)
	if err != nil {
		cancel()
		close(p.done)
		return p
	}
	p.root = abs
	go func() {
		defer close(p.done)
		p.walk(ctx, abs, &budget)
	}()
	return p
}

// walk lists dir and, depth first, the directories below it, while budget lasts; it returns
// false when the prescan is over (stopped, or out of budget). A directory it cannot list is
// left to the backup, which reports why (or excludes it, as a mover does lost+found).
func (p *Prescan) walk(ctx context.Context, dir string, budget *int) bool {
	if ctx.Err() != nil {
		return false
	}
	entries, err := p.list(dir)
	if err != nil {
		return true
	}
	if len(entries) > *budget {
		return false
	}
	*budget -= len(entries)
	p.mu.Lock()
	p.dirs[dir] = entries
	p.mu.Unlock()
	for _, e := range entries {
		if e.st.Mode&unix.S_IFMT == unix.S_IFDIR && !p.walk(ctx, filepath.Join(dir, e.name), budget) {
			return false
		}
	}
	return true
}

// Stop ends the prescan and waits for it. Its listings stay available to take.
func (p *Prescan) Stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

// take returns, and forgets, the listing of the directory at abs, if the prescan has it.
func (p *Prescan) take(abs string) ([]dirEntry, bool) {
	if p == nil {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	entries, ok := p.dirs[abs]
	delete(p.dirs, abs)
	return entries, ok
}

// statDir lists the directory dir, sorted by name, with the lstat of each entry; skip, if set,
// says which names to leave out unstatted.
func statDir(dir string, skip func(name string) bool) ([]dirEntry, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	sort.Strings(names)
	dirfd := int(d.Fd())
	entries := make([]dirEntry, 0, len(names))
	for _, name := range names {
		if skip != nil && skip(name) {
			continue
		}
		e := dirEntry{name: name}
		// The kernel walks one name, not the whole path.
		if err := unix.Fstatat(dirfd, name, &e.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, fmt.Errorf("reading metadata of %s: %w", filepath.Join(dir, name), err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}
