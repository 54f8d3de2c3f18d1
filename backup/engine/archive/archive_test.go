package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	s, err := objstore.Open(ctx, objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Small chunks and packs so that small test trees still span many of both.
	r, err := repo.Init(ctx, s, repo.UserKey{Passphrase: "test passphrase"}, repo.InitOptions{
		Chunker:  repo.ChunkerParams{Algorithm: "fastcdc-v1.0.0", MinSize: 4 << 10, AvgSize: 16 << 10, MaxSize: 64 << 10},
		PackSize: 256 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func write(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// makeTree writes a tree with every kind of entry Stork backs up.
func makeTree(t *testing.T, root string) {
	t.Helper()
	write(t, filepath.Join(root, "random.bin"), random(300<<10), 0o644)
	write(t, filepath.Join(root, "text.txt"), bytes.Repeat([]byte("the quick brown fox\n"), 20000), 0o600)
	write(t, filepath.Join(root, "empty"), nil, 0o640)
	write(t, filepath.Join(root, "sub/deeper/file"), random(1000), 0o755)
	write(t, filepath.Join(root, "setgid"), []byte("x"), 0o2750)
	if err := os.MkdirAll(filepath.Join(root, "emptydir"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/deeper/file", filepath.Join(root, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(root, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "random.bin"), filepath.Join(root, "sub/hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	// Names that are not UTF-8 (Latin-1 é and è): JSON alone would make both "latin1-\ufffd".
	write(t, filepath.Join(root, "latin1-\xe9"), []byte("e acute"), 0o644)
	write(t, filepath.Join(root, "latin1-\xe8"), []byte("e grave"), 0o644)
	if err := os.Symlink("latin1-\xe9", filepath.Join(root, "link-to-latin1")); err != nil {
		t.Fatal(err)
	}
	// A sparse file: 1 MiB of data, a 3 MiB hole, 4 KiB of data, a trailing 1 MiB hole.
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(random(1 << 20))
	f.WriteAt(random(4096), 4<<20)
	f.Truncate(6 << 20)
	f.Close()
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(root, "text.txt"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(root, "rel-link"), 4321, 8765); err != nil {
			t.Fatal(err)
		}
		// Restored owner then mode: chown clears setuid and setgid.
		p := filepath.Join(root, "setuid")
		write(t, p, []byte("#!/bin/sh\n"), 0o750)
		if err := os.Lchown(p, 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o6750); err != nil {
			t.Fatal(err)
		}
	}
	// Where supported; two attribute names that are not UTF-8 (Latin-1 é and è).
	_ = unix.Lsetxattr(filepath.Join(root, "text.txt"), "user.stork", []byte("kept"), 0)
	_ = unix.Lsetxattr(filepath.Join(root, "empty"), "user.caf\xe9", []byte("1"), 0)
	_ = unix.Lsetxattr(filepath.Join(root, "empty"), "user.caf\xe8", []byte("2"), 0)
	old := time.Date(2020, 2, 29, 12, 34, 56, 789000000, time.UTC)
	for _, p := range []string{"random.bin", "sub/deeper", "emptydir"} {
		if err := os.Chtimes(filepath.Join(root, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// describe lists every entry under root with its metadata and a digest of its content.
func describe(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		d := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		if fi.Mode()&os.ModeSymlink == 0 && !fi.IsDir() {
			d += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
		}
		if fi.IsDir() && rel != "." {
			d += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
		}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			d += fmt.Sprintf(" size=%d sum=%x", len(data), repoSum(data))
			if first, ok := inodes[st.Ino]; ok {
				d += " hardlink-of=" + first
			} else if st.Nlink > 1 {
				inodes[st.Ino] = rel
			}
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			d += " -> " + target
		}
		if xs, err := readXattrs(p); err == nil {
			for _, x := range xs {
				d += fmt.Sprintf(" xattr %q=%q", x.Name, x.Value)
			}
		}
		out[rel] = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func repoSum(b []byte) uint64 {
	var h uint64 = 1469598103934665603
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

func diff(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: missing after restore", k)
		} else if g != w {
			t.Errorf("%s:\n  want %s\n  got  %s", k, w, g)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: restored but not in the source", k)
		}
	}
}

func TestRoundTripEveryKind(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "restored")
	makeTree(t, src)
	var last Progress
	id, snap, err := Backup(ctx, r, src, BackupOptions{Tags: map[string]string{"pvc": "data"}, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if last.BytesDone != last.BytesTotal || last.FilesDone != last.FilesTotal || last.FilesTotal != snap.Summary.Files {
		t.Errorf("final progress %+v, summary %+v", last, snap.Summary)
	}
	if err := Restore(ctx, r, id, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	diff(t, describe(t, src), describe(t, dst))
	// One worker, one part of a pack at a time, restores the same.
	tight := filepath.Join(t.TempDir(), "tight")
	if err := Restore(ctx, r, id, tight, RestoreOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	diff(t, describe(t, src), describe(t, tight))

	// Holes come back as holes.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dst, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if allocated := st.Blocks * 512; allocated > 2<<20 {
		t.Errorf("restored sparse file allocates %d bytes for 1 MiB + 4 KiB of data", allocated)
	}
}

func TestIncrementalReusesUnchangedFiles(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	for i := range 50 {
		write(t, filepath.Join(src, fmt.Sprintf("d%d/f%d", i%5, i)), random(5000+i), 0o644)
	}
	first, s1, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, s2, err := Backup(ctx, r, src, BackupOptions{Parent: &first})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Summary.FilesReused != 50 || s2.Summary.BlobsAdded != 0 {
		t.Errorf("unchanged re-backup: %+v; want every file reused and nothing stored", s2.Summary)
	}
	// Change one file: only it is read, and only its new chunks are stored.
	p := filepath.Join(src, "d3/f13")
	data, _ := os.ReadFile(p)
	data[100] ^= 0xff
	write(t, p, data, 0o644)
	third, s3, err := Backup(ctx, r, src, BackupOptions{Parent: &first})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Summary.FilesReused != 49 || s3.Summary.BlobsAdded == 0 || s3.Summary.BlobsAdded > 3 {
		t.Errorf("after changing one file: %+v", s3.Summary)
	}
	if s1.Summary.BytesStored == 0 {
		t.Error("first backup stored nothing")
	}
	dst := t.TempDir()
	if err := Restore(ctx, r, third, dst, RestoreOptions{Include: []string{"d3"}}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "d3/f13"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored changed file differs (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "d2")); !os.IsNotExist(err) {
		t.Errorf("restore with include d3 also restored d2 (%v)", err)
	}
	// A path that is not there is named, not restored as nothing.
	for _, tc := range []struct{ include, want string }{
		{"d9", `path "d9" is not in the snapshot`},
		{"d3/nope", `path "d3/nope" is not in the snapshot`},
		{"d3/f13/x", `path "d3/f13/x" is not in the snapshot: d3/f13 is not a directory`},
	} {
		err := Restore(ctx, r, third, t.TempDir(), RestoreOptions{Include: []string{"d3/f8", tc.include}})
		if err == nil || err.Error() != tc.want {
			t.Errorf("include %s: %v, want %s", tc.include, err, tc.want)
		}
	}
}

func TestDedupAcrossVolumes(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	shared := random(400 << 10)
	a, b := t.TempDir(), t.TempDir()
	write(t, filepath.Join(a, "db"), shared, 0o644)
	write(t, filepath.Join(b, "copy-of-db"), append(random(10), shared...), 0o644)
	_, s1, err := Backup(ctx, r, a, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, s2, err := Backup(ctx, r, b, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Summary.BytesAdded > s1.Summary.BytesAdded/4 {
		t.Errorf("second volume with the same content added %d bytes (first added %d): chunks were not shared",
			s2.Summary.BytesAdded, s1.Summary.BytesAdded)
	}
}

// TestExcludeLeavesOutUnreadable backs up a tree whose lost+found cannot be read (as a non-root
// mover meets an ext4 root) with it excluded: the backup succeeds, totals and the restored tree
// leave it out, and what is below an excluded name elsewhere is kept.
func TestExcludeLeavesOutUnreadable(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "data", "lost+found"), []byte("a file, not the excluded directory"), 0o644)
	write(t, filepath.Join(src, "data", "table"), []byte("rows"), 0o644)
	write(t, filepath.Join(src, "lost+found", "#12"), []byte("orphan"), 0o644)
	if err := os.Chmod(filepath.Join(src, "lost+found"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(src, "lost+found"), 0o700) })
	var last Progress
	id, _, err := Backup(ctx, r, src, BackupOptions{Exclude: func(rel string) bool { return rel == "lost+found" },
		Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if last.FilesTotal != 2 {
		t.Errorf("progress counted %d files, want 2 (the excluded directory's file left out)", last.FilesTotal)
	}
	dst := t.TempDir()
	if err := Restore(ctx, r, id, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "lost+found")); !os.IsNotExist(err) {
		t.Errorf("lost+found was restored: %v", err)
	}
	for _, f := range []string{"data/lost+found", "data/table"} {
		if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
			t.Errorf("%s missing after restore: %v", f, err)
		}
	}
}

// TestRestoreRefusesEscapes feeds restore trees that try to leave the target.
func TestRestoreRefusesEscapes(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"..", "../evil", "/etc/passwd", "a/b", ""} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			data, _ := json.Marshal(Tree{Nodes: []Node{{Name: name, Type: TypeFile}}})
			if _, err := decodeTree(data); err == nil || !strings.Contains(err.Error(), "invalid file name") {
				t.Fatalf("tree with entry %q accepted: %v", name, err)
			}
		})
	}

	// An existing symlink in the target where the backup has a directory is not followed.
	r := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "dir/file"), []byte("data"), 0o644)
	id, _, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(target, "dir")); err != nil {
		t.Fatal(err)
	}
	err = Restore(ctx, r, id, target, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "not a directory is in the way") {
		t.Fatalf("restore through a symlink: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("restore wrote outside its target: %v", entries)
	}
}

// A crafted backup whose hard link names a file through a symlink it also restores must not
// make the restore link a file outside its target.
func TestRestoreRefusesHardlinkThroughSymlink(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret"), []byte("not yours"), 0o600)
	tree, _ := json.Marshal(Tree{Nodes: []Node{
		{Name: "evil", Type: TypeSymlink, LinkTarget: outside},
		{Name: "h", Type: TypeHardlink, LinkTarget: "evil/secret"},
	}})
	w := r.NewWriter(ctx, 1)
	treeID, err := w.Add(repo.TreeBlob, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	id, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Now(), Tree: treeID})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	err = Restore(ctx, r, id, target, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "is not a file of this restore") {
		t.Fatalf("restore of a hard link through a symlink: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(target, "h")); err == nil {
		t.Fatal("the hard link to a file outside the target was made")
	}
}

func TestWrongKeyRestoresNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := objstore.Open(ctx, objstore.Config{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := repo.Init(ctx, s, repo.UserKey{Passphrase: "right passphrase"}, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), random(1000), 0o644)
	if _, _, err := Backup(ctx, r, src, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := repo.Open(ctx, s, repo.UserKey{Passphrase: "wrong passphrase"}); !errors.Is(err, repo.ErrWrongKey) {
		t.Fatalf("open with a wrong key: %v", err)
	}
}

func TestAllZero(t *testing.T) {
	b := make([]byte, 10000)
	if !allZero(b) {
		t.Error("zeros not seen as zero")
	}
	b[mrand.IntN(len(b))] = 1
	if allZero(b) {
		t.Error("non-zero byte missed")
	}
}

func TestWriteSparse(t *testing.T) {
	withEnd := make([]byte, 64<<10)
	copy(withEnd[100:], "head")           // first page has data
	copy(withEnd[40<<10:], "middle")      // a page in the middle has data
	copy(withEnd[len(withEnd)-3:], "end") // the last page has data
	zeroTail := slices.Clone(withEnd)
	clear(zeroTail[len(zeroTail)-8192:]) // the last two pages are zero
	for _, tc := range []struct {
		name     string
		data     []byte
		wroteEnd [3]bool // at offsets 0, 4096, 1234
	}{
		{"data at the end", withEnd, [3]bool{true, true, true}},
		// At 1234 the last file page is partly in data: written, zeros and all.
		{"zero pages at the end", zeroTail, [3]bool{false, false, true}},
	} {
		for i, off := range []int64{0, 4096, 1234} {
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			wroteEnd, err := writeSparse(f, tc.data, off)
			if err != nil {
				t.Fatal(err)
			}
			// The restore skips its truncate when wroteEnd says the file has its size.
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if hasSize := st.Size == off+int64(len(tc.data)); wroteEnd != tc.wroteEnd[i] || hasSize != wroteEnd {
				t.Errorf("%s, offset %d: wroteEnd %v (want %v), file size %d", tc.name, off, wroteEnd, tc.wroteEnd[i], st.Size)
			}
			got := make([]byte, len(tc.data))
			if _, err := f.ReadAt(got, off); err != nil && !(errors.Is(err, io.EOF) && !wroteEnd) {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("%s, offset %d: content differs", tc.name, off)
			}
			// At most the pages with data (4, one of which may straddle), not all 16+.
			if st.Blocks*512 > 5*4096 {
				t.Errorf("%s, offset %d: %d bytes allocated for 3 pages of data", tc.name, off, st.Blocks*512)
			}
			f.Close()
		}
	}
}

// copyTree copies a tree's directories and files as cp -a does: new inodes and ctimes, the
// same content, mode and mtime (to the nanosecond).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(to, data, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(to, info.ModTime(), info.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIncrementalFromCopies backs up a copy of a tree (as every local snapshot and CSI clone
// is) parented on the original's backup: files whose size, mtime, mode and owner match are not
// read although their inode and ctime differ; a changed file is read; strict change detection
// reads everything, including a file rewritten with its old size and mtime.
func TestIncrementalFromCopies(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	var total int64
	for i := range 40 {
		data := random(3000 + i)
		total += int64(len(data))
		write(t, filepath.Join(src, fmt.Sprintf("d%d/f%d", i%4, i)), data, 0o640)
	}
	first, _, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "copy")
	copyTree(t, src, copied)
	// An ordinary write: new content, new mtime.
	changed := filepath.Join(copied, "d1/f5")
	newData := random(3005)
	write(t, changed, newData, 0o640)
	// A writer that sets the old mtime back after rewriting in place, same size.
	sneaky := filepath.Join(copied, "d2/f6")
	info, _ := os.Stat(sneaky)
	sneakyData := random(int(info.Size()))
	write(t, sneaky, sneakyData, 0o640)
	if err := os.Chtimes(sneaky, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}

	var last Progress
	second, s2, err := Backup(ctx, r, copied, BackupOptions{Parent: &first, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Summary.FilesReused != 39 || s2.Summary.BytesReused != total-3005 {
		t.Errorf("copy with one changed file: %+v; want 39 files and %d bytes reused", s2.Summary, total-3005)
	}
	if last.BytesSkipped != s2.Summary.BytesReused || last.BytesDone != total {
		t.Errorf("final progress %+v, want %d bytes done of which %d skipped", last, total, s2.Summary.BytesReused)
	}
	strict, s3, err := Backup(ctx, r, copied, BackupOptions{Parent: &first, StrictChangeDetection: true, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Summary.FilesReused != 0 || last.BytesSkipped != 0 {
		t.Errorf("strict change detection: %+v, progress %+v; want nothing reused", s3.Summary, last)
	}
	for _, c := range []struct {
		snap repo.ID
		want []byte
	}{{second, newData}, {strict, newData}} {
		dst := t.TempDir()
		if err := Restore(ctx, r, c.snap, dst, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(dst, "d1/f5")); !bytes.Equal(got, c.want) {
			t.Errorf("snapshot %s: the changed file was not read", c.snap)
		}
	}
	// The documented limit of metadata comparison, and what strict mode is for.
	dst := t.TempDir()
	if err := Restore(ctx, r, strict, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "d2/f6")); !bytes.Equal(got, sneakyData) {
		t.Error("strict change detection kept the parent's content of a file rewritten with its old mtime")
	}
}

func TestUnchanged(t *testing.T) {
	mtime := time.Unix(1700000000, 123456789)
	prev := Node{Type: TypeFile, Mode: 0o644, UID: 1, GID: 2, MTime: mtime, CTime: mtime, Inode: 7, Device: 3, Size: 10,
		Content: []repo.ID{{1}}}
	for _, c := range []struct {
		name   string
		change func(n *Node)
		want   bool
	}{
		{"identical", func(n *Node) {}, true},
		{"a copy: other inode, device and ctime", func(n *Node) { n.Inode, n.Device, n.CTime = 8, 4, mtime.Add(time.Hour) }, true},
		{"mtime one nanosecond later", func(n *Node) { n.MTime = mtime.Add(time.Nanosecond) }, false},
		{"size", func(n *Node) { n.Size = 11 }, false},
		{"mode", func(n *Node) { n.Mode = 0o600 }, false},
		{"owner", func(n *Node) { n.UID = 0 }, false},
		{"group", func(n *Node) { n.GID = 0 }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cur := prev
			cur.Content = nil
			c.change(&cur)
			if got := unchanged(&prev, &cur); got != c.want {
				t.Errorf("unchanged = %v, want %v", got, c.want)
			}
		})
	}
}

// TestProgressWithParent: a backup with a parent takes its totals from the parent instead of
// scanning the tree; while it runs done never passes total, and the last report is exact
// even when the tree grew or shrank since the parent.
func TestProgressWithParent(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, src string)
		files  int64
	}{
		{"grown", func(t *testing.T, src string) {
			for i := range 30 {
				if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("new-%d", i)), bytes.Repeat([]byte{byte(i)}, 5000), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, 40},
		{"shrunk", func(t *testing.T, src string) {
			for i := range 5 {
				if err := os.Remove(filepath.Join(src, fmt.Sprintf("f-%d", i))); err != nil {
					t.Fatal(err)
				}
			}
		}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			src := t.TempDir()
			for i := range 10 {
				if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f-%d", i)), bytes.Repeat([]byte("x"), 1000+i), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			parent, _, err := Backup(ctx, r, src, BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, src)
			var reports []Progress
			_, snap, err := Backup(ctx, r, src, BackupOptions{Parent: &parent, Progress: func(p Progress) { reports = append(reports, p) }})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range reports {
				if p.FilesDone > p.FilesTotal || p.BytesDone > p.BytesTotal {
					t.Errorf("report %+v: done passes total", p)
				}
			}
			last := reports[len(reports)-1]
			if last.FilesTotal != tc.files || last.FilesTotal != snap.Summary.Files || last.BytesTotal != snap.Summary.Bytes || last.BytesDone != last.BytesTotal {
				t.Errorf("last report %+v, summary %+v: want exact totals, %d files", last, snap.Summary, tc.files)
			}
		})
	}
}

// TestTreeJSONMatchesEncodingJSON: tree blobs are named by the hash of their bytes, so the
// faster encoder must write exactly what encoding/json wrote, or every tree of every backup
// made before would be stored again once; and what either wrote must decode the same.
func TestTreeJSONMatchesEncodingJSON(t *testing.T) {
	var id repo.ID
	id[3] = 7
	trees := []*Tree{
		{Nodes: []Node{}},
		{Nodes: []Node{
			{Name: "a<b>&c\u2028", Type: TypeFile, Mode: 0o4755, UID: 1000, GID: 1000, MTime: time.Unix(1, 5).UTC(), CTime: time.Unix(2, 0).UTC(),
				Inode: 12, Device: 34, Size: 5, Content: []repo.ID{id, id}},
			{Name: "dir", Type: TypeDir, Subtree: &id, Xattrs: []Xattr{{Name: "user.x", Value: []byte{0, 1, 2}}, {Name: "user.empty", Value: []byte{}}}},
			{Name: "hard", Type: TypeHardlink, LinkTarget: "dir/f"},
			{Name: "link \"q\" \\", Type: TypeSymlink, LinkTarget: "../x\x01é"},
		}, Root: &Node{Name: ".", Type: TypeDir, MTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}},
	}
	for i, tr := range trees {
		want, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeTree(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("tree %d:\n encodeTree    %s\n encoding/json %s", i, got, want)
		}
		dec, err := decodeTree(want)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(dec); !bytes.Equal(again, want) {
			t.Errorf("tree %d does not survive decodeTree: %s", i, again)
		}
	}
}

// Every field of Node that a tree blob holds must make Node.same false when it differs: a
// field same forgot would let an unchanged-looking directory keep its parent's tree blob and
// lose the change.
func TestNodeSameComparesEveryField(t *testing.T) {
	id := repo.ID{1}
	base := Node{Name: "f", Type: TypeFile, Mode: 0o644, UID: 1, GID: 2, MTime: time.Unix(10, 5).UTC(), CTime: time.Unix(11, 6).UTC(),
		Inode: 7, Device: 8, Size: 9, Content: []repo.ID{{2}}, Subtree: &id, LinkTarget: "t",
		Xattrs: []Xattr{{Name: "user.a", Value: []byte("v")}}, RawName: []byte("r"), RawLinkTarget: []byte("l")}
	if !base.same(&base) {
		t.Fatal("a node is not the same as itself")
	}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		changed := base
		v := reflect.ValueOf(&changed).Elem().Field(i)
		switch x := v.Addr().Interface().(type) {
		case *string:
			*x += "x"
		case *uint32:
			*x++
		case *uint64:
			*x++
		case *int64:
			*x++
		case *time.Time:
			*x = x.Add(time.Nanosecond)
		case *[]repo.ID:
			*x = []repo.ID{{3}}
		case **repo.ID:
			*x = &repo.ID{4}
		case *[]Xattr:
			*x = []Xattr{{Name: "user.a", Value: []byte("w")}}
		case *[]byte:
			*x = []byte("other")
		default:
			t.Fatalf("field %s (%s): teach Node.same and this test about it", f.Name, f.Type)
		}
		if base.same(&changed) || changed.same(&base) {
			t.Errorf("Node.same ignores field %s", f.Name)
		}
	}
}

// An unchanged directory keeps its parent's tree blob, and a change deep down gives new blobs
// from there to the root.
func TestUnchangedTreeKeepsParentBlob(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "a/b/f"), random(5000), 0o644)
	write(t, filepath.Join(src, "c/g"), random(5000), 0o644)
	first, s1, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, s2, err := Backup(ctx, r, src, BackupOptions{Parent: &first})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Tree != s1.Tree || s2.Summary.BlobsAdded != 0 || s2.Summary.Bytes != 10000 {
		t.Errorf("unchanged tree: root %s (parent %s), summary %+v", s2.Tree, s1.Tree, s2.Summary)
	}
	if err := os.Chmod(filepath.Join(src, "a/b/f"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, s3, err := Backup(ctx, r, src, BackupOptions{Parent: &first})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Tree == s1.Tree || s3.Summary.BlobsAdded != 3 { // a/b, a and the root
		t.Errorf("a mode changed in a/b: root %s, summary %+v; want a new root and 3 new trees", s3.Tree, s3.Summary)
	}
	dst := t.TempDir()
	if err := Restore(ctx, r, third, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "a/b/f")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored a/b/f: %v, %v; want mode 0600", fi, err)
	}
}
