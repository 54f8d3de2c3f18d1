package archive

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	makeTree(t, src)
	id, snap, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// flip rewrites one byte of a file and puts its modification time back, as silent
	// corruption would.
	flip := func(t *testing.T, p string, off int64) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{0}
		f.ReadAt(b, off)
		b[0] ^= 0x55
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		os.Chtimes(p, fi.ModTime(), fi.ModTime())
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dst string)
		want   []string // each a problem the report must hold; none: it must be clean
	}{
		{name: "as restored"},
		{"one byte of a big file", func(t *testing.T, dst string) { flip(t, filepath.Join(dst, "random.bin"), 200<<10) },
			[]string{"random.bin: bytes "}},
		{"one byte in a sparse file's data after a hole", func(t *testing.T, dst string) { flip(t, filepath.Join(dst, "sparse"), 4<<20+10) },
			[]string{"sparse: bytes "}},
		{"a file shortened", func(t *testing.T, dst string) {
			os.Truncate(filepath.Join(dst, "text.txt"), 10)
		}, []string{"text.txt: 10 bytes, the backup's 400000", "text.txt: modified "}},
		{"a file removed", func(t *testing.T, dst string) { os.Remove(filepath.Join(dst, "sub/deeper/file")) },
			[]string{"sub/deeper/file: missing from the restored volume"}},
		{"a file added", func(t *testing.T, dst string) { write(t, filepath.Join(dst, "emptydir/new"), []byte("x"), 0o644) },
			[]string{"emptydir/new: is not in the backup"}},
		{"a mode changed", func(t *testing.T, dst string) { os.Chmod(filepath.Join(dst, "setgid"), 0o755) },
			[]string{"setgid: mode 0755, the backup's 0750"}},
		{"a symlink redirected", func(t *testing.T, dst string) {
			os.Remove(filepath.Join(dst, "rel-link"))
			os.Symlink("elsewhere", filepath.Join(dst, "rel-link"))
		}, []string{`rel-link: the symlink points to "elsewhere"`}},
		{"a hard link broken into a copy", func(t *testing.T, dst string) {
			p := filepath.Join(dst, "sub/hardlink")
			data, _ := os.ReadFile(p)
			os.Remove(p)
			write(t, p, data, 0o644)
		}, []string{"sub/hardlink: is not a hard link of random.bin"}},
		{"a file touched", func(t *testing.T, dst string) {
			os.Chtimes(filepath.Join(dst, "empty"), time.Now(), time.Now().Add(time.Hour))
		}, []string{"empty: modified "}},
		{"a fifo replaced by a file", func(t *testing.T, dst string) {
			os.Remove(filepath.Join(dst, "fifo"))
			write(t, filepath.Join(dst, "fifo"), nil, 0o620)
		}, []string{"fifo: is not a fifo as in the backup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "restored")
			if err := Restore(ctx, r, id, dst, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.damage != nil {
				tc.damage(t, dst)
			}
			var last Progress
			rep, err := Verify(ctx, r, id, dst, VerifyOptions{Progress: func(p Progress) { last = p }})
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 {
				if rep.ProblemCount != 0 || rep.Err() != nil {
					t.Fatalf("a faithful restore has problems: %v", rep.Err())
				}
				if rep.Files != snap.Summary.Files || rep.Bytes != snap.Summary.Bytes {
					t.Errorf("verified %d files, %d bytes; the backup has %d, %d", rep.Files, rep.Bytes, snap.Summary.Files, snap.Summary.Bytes)
				}
				if last.BytesDone != snap.Summary.Bytes || last.FilesDone != last.FilesTotal {
					t.Errorf("final progress %+v, backup %+v", last, snap.Summary)
				}
				return
			}
			// Every problem is about the damaged entry (a rewritten symlink also has a new
			// time and owner), and says what the case expects.
			damaged, _, _ := strings.Cut(tc.want[0], ":")
			for _, p := range rep.Problems {
				if !strings.HasPrefix(p, damaged+":") {
					t.Errorf("a problem with an entry that was not damaged: %q", p)
				}
			}
			if rep.ProblemCount == 0 {
				t.Fatal("no problem found")
			}
			for _, w := range tc.want {
				if !strings.Contains(rep.Err().Error(), w) {
					t.Errorf("the report %q does not say %q", rep.Err(), w)
				}
			}
		})
	}
}

func TestVerifyIgnoresListedRootEntries(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	id, _, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Restore(ctx, r, id, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dst, "lost+found"), 0o700)
	rep, err := Verify(ctx, r, id, dst, VerifyOptions{Ignore: []string{"lost+found"}})
	if err != nil || rep.Err() != nil {
		t.Fatalf("lost+found at the root is ignored when asked: %v %v", err, rep.Err())
	}
	rep, err = Verify(ctx, r, id, dst, VerifyOptions{})
	if err != nil || rep.ProblemCount != 1 {
		t.Fatalf("lost+found counts when not ignored: %v %+v", err, rep)
	}
}
