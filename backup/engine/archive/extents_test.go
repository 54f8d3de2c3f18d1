package archive

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"stork.dev/stork/internal/scratchfs"
)

func TestSharedRanges(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b []extent
		want [][2]uint64
	}{
		{"nothing mapped", nil, []extent{{0, 100, 10}}, nil},
		{"one shared extent", []extent{{0, 100, 10}}, []extent{{0, 100, 10}}, [][2]uint64{{0, 10}}},
		{"same blocks at another offset are not the same bytes there",
			[]extent{{0, 100, 10}}, []extent{{10, 100, 10}}, nil},
		{"a rewritten middle splits the file",
			[]extent{{0, 100, 4}, {4, 900, 2}, {6, 106, 4}}, []extent{{0, 100, 10}},
			[][2]uint64{{0, 4}, {6, 10}}},
		{"touching shared pieces merge", []extent{{0, 100, 4}, {4, 104, 6}}, []extent{{0, 100, 10}},
			[][2]uint64{{0, 10}}},
		{"partial overlaps", []extent{{0, 100, 6}, {8, 300, 4}}, []extent{{2, 102, 8}, {10, 302, 5}},
			[][2]uint64{{2, 6}, {10, 12}}},
		{"a grown file shares its old part", []extent{{0, 100, 10}, {10, 500, 10}}, []extent{{0, 100, 10}},
			[][2]uint64{{0, 10}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := sharedRanges(c.a, c.b); !reflect.DeepEqual(got, c.want) {
				t.Errorf("sharedRanges = %v, want %v", got, c.want)
			}
		})
	}
}

// snapshotCopy makes dst a reflink copy of src keeping times, as the agent's snapshots are
// (cp --reflink=never for a plain copy that shares nothing).
func snapshotCopy(t *testing.T, src, dst, reflink string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", "--reflink="+reflink, src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
}

// TestExtentIncremental: a changed large file in a reflink snapshot is read only where its
// blocks differ from the previous snapshot's, and restores to its new content; where the
// previous snapshot's copy cannot be trusted or shares nothing, the file is read whole.
func TestExtentIncremental(t *testing.T) {
	for _, fs := range []string{"xfs", "btrfs"} {
		t.Run(fs, func(t *testing.T) {
			ctx := context.Background()
			mnt := scratchfs.Mount(t, fs)
			live := filepath.Join(mnt, "live")
			const size = 48 << 20
			big := random(size)
			write(t, filepath.Join(live, "db/data"), big, 0o600)
			write(t, filepath.Join(live, "small"), random(5000), 0o644)
			snap1 := filepath.Join(mnt, "snap1")
			snapshotCopy(t, live, snap1, "always")
			r := newRepo(t)
			first, _, err := Backup(ctx, r, snap1, BackupOptions{})
			if err != nil {
				t.Fatal(err)
			}

			// The app writes 8 KiB in the middle and appends 100 KiB; the next snapshot.
			f, err := os.OpenFile(filepath.Join(live, "db/data"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			patch, tail := random(8<<10), random(100<<10)
			if _, err := f.WriteAt(patch, 20<<20); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(tail, size); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			want := append(append(append([]byte{}, big[:20<<20]...), patch...), big[20<<20+len(patch):]...)
			want = append(want, tail...)
			snapshotCopy(t, live, filepath.Join(mnt, "snap2"), "always")
			snapshotCopy(t, live, filepath.Join(mnt, "plain"), "never")

			backup := func(dir string, opts BackupOptions) (Progress, []byte) {
				t.Helper()
				var last Progress
				opts.Parent, opts.Progress = &first, func(p Progress) { last = p }
				id, snap, err := Backup(ctx, r, filepath.Join(mnt, dir), opts)
				if err != nil {
					t.Fatal(err)
				}
				if snap.Summary.BytesReused != last.BytesSkipped {
					t.Errorf("summary says %d bytes reused, progress %d", snap.Summary.BytesReused, last.BytesSkipped)
				}
				dst := t.TempDir()
				if err := Restore(ctx, r, id, dst, RestoreOptions{}); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(dst, "db/data"))
				if err != nil {
					t.Fatal(err)
				}
				return last, got
			}
			total := int64(len(want) + 5000)
			for _, c := range []struct {
				name    string
				dir     string
				opts    BackupOptions
				prepare func()
				maxRead int64
				// The bytes skipped: at least min, at most max.
				minSkipped, maxSkipped int64
			}{
				// The chunks the patch touches (at most two of newRepo's at most 64 KiB, as it
				// is 8 KiB), the last chunk if it was cut short, and what was appended.
				{name: "reflink snapshot", dir: "snap2", maxRead: 3*(64<<10) + 100<<10, minSkipped: size - 3*(64<<10), maxSkipped: total},
				{name: "strict change detection reads every byte", dir: "snap2",
					opts: BackupOptions{StrictChangeDetection: true}, maxRead: total},
				// Only the small file, unchanged, is skipped.
				{name: "a plain copy shares no blocks", dir: "plain", maxRead: total, minSkipped: 5000, maxSkipped: 5000},
				{name: "a parent copy touched since its backup is not trusted", dir: "snap2",
					prepare: func() {
						then := time.Unix(1e9, 0)
						if err := os.Chtimes(filepath.Join(snap1, "db/data"), then, then); err != nil {
							t.Fatal(err)
						}
					}, maxRead: total, minSkipped: 5000, maxSkipped: 5000},
			} {
				t.Run(c.name, func(t *testing.T) {
					if c.prepare != nil {
						c.prepare()
					}
					p, got := backup(c.dir, c.opts)
					if !bytes.Equal(got, want) {
						t.Fatalf("restored file differs from the snapshot (%d bytes, want %d)", len(got), len(want))
					}
					read := p.BytesDone - p.BytesSkipped
					if p.BytesDone != total || read > c.maxRead || p.BytesSkipped < c.minSkipped || p.BytesSkipped > c.maxSkipped {
						t.Errorf("progress %+v: read %d bytes, want at most %d, and %d..%d skipped", p, read, c.maxRead, c.minSkipped, c.maxSkipped)
					}
				})
			}
		})
	}
}
