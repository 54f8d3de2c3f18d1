package fscopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const mib = 1 << 20

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to set owners and create device nodes")
	}
}

func randBytes(n int, seed uint64) []byte {
	var key [32]byte
	key[0] = byte(seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func writeFile(t *testing.T, p string, data []byte, mode uint32) {
	t.Helper()
	must(t, os.WriteFile(p, data, 0o600))
	chmod(t, p, mode)
}

// chmod takes raw mode bits: os.Chmod wants Go's own setuid, setgid and sticky flags.
func chmod(t *testing.T, p string, mode uint32) {
	t.Helper()
	must(t, unix.Chmod(p, mode))
}

// writeSparse writes data segments at their offsets into a file of the given size and returns
// the whole expected content.
func writeSparse(t *testing.T, p string, size int64, segs map[int64][]byte) []byte {
	t.Helper()
	f, err := os.Create(p)
	must(t, err)
	want := make([]byte, size)
	for off, data := range segs {
		_, err := f.WriteAt(data, off)
		must(t, err)
		copy(want[off:], data)
	}
	must(t, f.Truncate(size))
	must(t, f.Close())
	return want
}

// setTimes gives every entry under root (root included) its own past atime and mtime with
// nanoseconds, deepest entries first so that nothing moves a time once it is set.
func setTimes(t *testing.T, root string) {
	t.Helper()
	var paths []string
	must(t, filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	base := time.Date(2009, 11, 10, 23, 0, 0, 123456789, time.UTC)
	for i := len(paths) - 1; i >= 0; i-- {
		mt := base.Add(time.Duration(i)*time.Hour + time.Duration(i)*1111)
		at := mt.Add(-24*time.Hour + 7)
		ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// entry is what a copy must preserve of one name.
type entry struct {
	Type         fs.FileMode
	Mode         uint32
	UID, GID     uint32
	Atime, Mtime int64
	Size         int64
	Link         string
	Xattrs       map[string][]byte
	// SameAs is the first name, in walk order, of the entry's inode: equal SameAs values
	// are hard links.
	SameAs string
}

// scan records every name under root by lstat alone, before any content is read, so that
// the access times are the ones the copy left.
func scan(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	firstName := map[uint64]string{}
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{
			Type: d.Type(), Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
			Atime: unix.TimespecToNsec(st.Atim), Mtime: unix.TimespecToNsec(st.Mtim),
			Xattrs: listXattrs(t, p),
		}
		if d.Type().IsRegular() {
			e.Size = st.Size
		}
		if d.Type() == fs.ModeSymlink {
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if first, ok := firstName[st.Ino]; ok && !d.IsDir() {
			e.SameAs = first
		} else {
			firstName[st.Ino], e.SameAs = rel, rel
		}
		out[rel] = e
		return nil
	}))
	return out
}

func listXattrs(t *testing.T, p string) map[string][]byte {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	must(t, err)
	var out map[string][]byte
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(p, name, v)
		must(t, err)
		if out == nil {
			out = map[string][]byte{}
		}
		out[name] = v[:vn]
	}
	return out
}

// roundTripTree is every kind of entry Copy handles, in src.
type roundTripTree struct {
	contents map[string][]byte // regular files by relative path
	sparse   string            // relative path of the sparse file
	xattrs   bool              // whether src's filesystem took a user.* attribute
	stats    Stats             // what Copy must report
}

func buildTree(t *testing.T, src, outside string) roundTripTree {
	t.Helper()
	tr := roundTripTree{contents: map[string][]byte{}}
	p := func(rel string) string { return filepath.Join(src, rel) }
	for _, d := range []string{"a", "a/b", "a/b/c", "empty", "sticky", "setgid"} {
		must(t, os.Mkdir(p(d), 0o755))
	}
	chmod(t, p("sticky"), 0o1777)
	chmod(t, p("setgid"), 0o2750)
	file := func(rel string, data []byte, perm uint32) {
		writeFile(t, p(rel), data, perm)
		tr.contents[rel] = data
	}
	file("a/empty", nil, 0o644)
	file("a/b/c/deep.txt", []byte("deep"), 0o600)
	file("a/b/owned", []byte("owned by someone else"), 0o640)
	must(t, os.Lchown(p("a/b/owned"), 1234, 5678))
	file("setuid", []byte("#!/bin/sh\n"), 0o755)
	// chown clears setuid, so the bit is set after the owner.
	must(t, os.Lchown(p("setuid"), 1234, 5678))
	chmod(t, p("setuid"), 0o4755)
	file("setgid/group-file", randBytes(5000, 1), 0o2755)

	// 3 MiB: 1 MiB data, 1 MiB hole, 512 KiB data, 512 KiB trailing hole.
	tr.sparse = "a/sparse"
	tr.contents[tr.sparse] = writeSparse(t, p(tr.sparse), 3*mib, map[int64][]byte{
		0:       randBytes(mib, 2),
		2 * mib: randBytes(mib/2, 3),
	})

	must(t, os.Symlink("b/c/deep.txt", p("a/rel")))
	must(t, os.Lchown(p("a/rel"), 1234, 5678))
	must(t, os.Symlink(outside, p("abs-dir")))
	must(t, os.Symlink(filepath.Join(outside, "secret"), p("a/b/abs-file")))
	must(t, os.Symlink("no/such/target", p("dangling")))

	file("a/h1", []byte("two names, one inode"), 0o444)
	must(t, os.Link(p("a/h1"), p("a/b/h2")))
	must(t, unix.Mkfifo(p("a/fifo"), 0o640))
	must(t, os.Lchown(p("a/fifo"), 1234, 5678))

	// Sockets are skipped.
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	must(t, unix.Bind(sock, &unix.SockaddrUnix{Name: p("a/sock")}))
	must(t, unix.Close(sock))

	must(t, os.Lchown(p("a/b"), 1234, 5678))
	chmod(t, p("a/b"), 0o750)
	chmod(t, src, 0o751)
	must(t, os.Lchown(src, 4321, 8765))

	err = unix.Lsetxattr(p("a/b/c/deep.txt"), "user.stork", []byte("file attr"), 0)
	if !errors.Is(err, unix.ENOTSUP) {
		must(t, err)
		must(t, unix.Lsetxattr(p("a/b"), "user.stork", []byte("dir attr"), 0))
		must(t, unix.Lsetxattr(src, "user.stork.root", []byte{0, 1, 2}, 0))
		tr.xattrs = true
	}
	setTimes(t, src)

	tr.stats = Stats{
		Files:     7 + 1, // regular files (h1/h2 once) and the FIFO
		Dirs:      6,
		Symlinks:  4,
		Hardlinks: 1,
	}
	for _, data := range tr.contents {
		tr.stats.Bytes += int64(len(data))
	}
	return tr
}

// shmDir returns a fresh directory on /dev/shm (tmpfs), where copies to t.TempDir() cross
// filesystems: FICLONE and copy_file_range may then refuse, and Copy must fall back.
func shmDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	d, err := os.MkdirTemp("/dev/shm", "fscopy-test-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestCopyRoundTrip(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name   string
		srcDir func(t *testing.T) string
	}{
		{"same filesystem", func(t *testing.T) string { return t.TempDir() }},
		{"from tmpfs to the temp dir", shmDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(tc.srcDir(t), "src")
			must(t, os.Mkdir(src, 0o755))
			outside := t.TempDir()
			writeFile(t, filepath.Join(outside, "secret"), []byte("outside the tree"), 0o600)
			tr := buildTree(t, src, outside)
			outsideBefore := scan(t, outside)
			want := scan(t, src)
			delete(want, "a/sock")
			// scan read src's directories, moving their atimes; put them back.
			setTimes(t, src)
			dst := filepath.Join(t.TempDir(), "dst")

			stats, err := Copy(context.Background(), src, dst, Options{})
			must(t, err)

			dstEntries := scan(t, dst)
			for _, name := range sortedKeys(want) {
				if got, ok := dstEntries[name]; !ok {
					t.Errorf("%s: missing from the copy", name)
				} else if !reflect.DeepEqual(got, want[name]) {
					t.Errorf("%s:\n got %+v\nwant %+v", name, got, want[name])
				}
			}
			for _, name := range sortedKeys(dstEntries) {
				if _, ok := want[name]; !ok {
					t.Errorf("%s: in the copy but not in src", name)
				}
			}
			// readlink moves a symlink's atime, whatever the flags; nothing else in src may change.
			after := scan(t, src)
			for _, name := range sortedKeys(after) {
				a, w := after[name], want[name]
				if a.Type == fs.ModeSymlink {
					a.Atime = w.Atime
				}
				if name != "a/sock" && !reflect.DeepEqual(a, w) {
					t.Errorf("src's %s changed:\n now %+v\n was %+v", name, a, w)
				}
			}
			// secret's atime shows a read through the symlinks; the directory's, only scan's.
			got := scan(t, outside)
			for _, m := range []map[string]entry{got, outsideBefore} {
				e := m["."]
				e.Atime = 0
				m["."] = e
			}
			if !reflect.DeepEqual(got, outsideBefore) {
				t.Errorf("the directory symlinks point to changed:\n now %+v\n was %+v", got, outsideBefore)
			}

			// Spot checks, so that a failure does not hide behind src and dst agreeing.
			type check struct {
				name      string
				got, want any
			}
			gotStats := stats
			gotStats.Reflinked = 0 // depends on the filesystem
			spot := []check{
				{"setuid mode", dstEntries["setuid"].Mode, uint32(0o4755)},
				{"sticky mode", dstEntries["sticky"].Mode, uint32(0o1777)},
				{"setgid dir mode", dstEntries["setgid"].Mode, uint32(0o2750)},
				{"owner", [2]uint32{dstEntries["a/b/owned"].UID, dstEntries["a/b/owned"].GID}, [2]uint32{1234, 5678}},
				{"symlink owner", dstEntries["a/rel"].UID, uint32(1234)},
				{"root owner", dstEntries["."].UID, uint32(4321)},
				{"root mode", dstEntries["."].Mode, uint32(0o751)},
				{"root mtime year", time.Unix(0, dstEntries["."].Mtime).UTC().Year(), 2009},
				{"relative link", dstEntries["a/rel"].Link, "b/c/deep.txt"},
				{"absolute link", dstEntries["abs-dir"].Link, outside},
				{"absolute link type", dstEntries["abs-dir"].Type, fs.ModeSymlink},
				{"fifo type", dstEntries["a/fifo"].Type, fs.ModeNamedPipe},
				{"hard link", dstEntries["a/h1"].SameAs, "a/b/h2"},
				{"stats", gotStats, tr.stats},
			}
			if tr.xattrs {
				spot = append(spot,
					check{"file xattr", string(dstEntries["a/b/c/deep.txt"].Xattrs["user.stork"]), "file attr"},
					check{"dir xattr", string(dstEntries["a/b"].Xattrs["user.stork"]), "dir attr"},
					check{"root xattr", dstEntries["."].Xattrs["user.stork.root"], []byte{0, 1, 2}})
			} else {
				t.Log("src's filesystem does not take user.* attributes: not checked")
			}
			for _, s := range spot {
				if !reflect.DeepEqual(s.got, s.want) {
					t.Errorf("%s: got %v, want %v", s.name, s.got, s.want)
				}
			}
			var h1, srcH1 unix.Stat_t
			must(t, unix.Lstat(filepath.Join(dst, "a/h1"), &h1))
			must(t, unix.Lstat(filepath.Join(src, "a/h1"), &srcH1))
			if h1.Nlink != 2 || h1.Ino == srcH1.Ino {
				t.Errorf("hard link in the copy: nlink %d, inode %d (src inode %d)", h1.Nlink, h1.Ino, srcH1.Ino)
			}

			for rel, want := range tr.contents {
				got, err := os.ReadFile(filepath.Join(dst, rel))
				must(t, err)
				if !bytes.Equal(got, want) {
					t.Errorf("%s: content differs", rel)
				}
			}

			_, entries, err := Usage(context.Background(), src)
			must(t, err)
			if n := stats.Files + stats.Dirs + stats.Symlinks + stats.Hardlinks; n != entries {
				t.Errorf("copy made %d entries, Usage counts %d", n, entries)
			}
			checkSparse(t, filepath.Join(src, tr.sparse), filepath.Join(dst, tr.sparse))
		})
	}
}

// checkSparse checks that dst keeps src's holes: the 1 MiB hole after the first MiB, and the
// trailing one, so that it uses no more than its 1.5 MiB of data.
func checkSparse(t *testing.T, src, dst string) {
	t.Helper()
	var sst, dstSt unix.Stat_t
	must(t, unix.Stat(src, &sst))
	must(t, unix.Stat(dst, &dstSt))
	if sst.Blocks*512 >= sst.Size {
		t.Logf("src's filesystem did not make %s sparse: holes not checked", src)
		return
	}
	if dstSt.Size != 3*mib || dstSt.Blocks*512 > 3*mib/2+64<<10 {
		t.Errorf("sparse copy: size %d, %d bytes allocated; want size %d, at most about %d allocated",
			dstSt.Size, dstSt.Blocks*512, 3*mib, 3*mib/2)
	}
	f, err := os.Open(dst)
	must(t, err)
	defer f.Close()
	for _, s := range []struct {
		from   int64
		whence int
		want   int64
	}{
		{0, unix.SEEK_HOLE, mib},
		{mib, unix.SEEK_DATA, 2 * mib},
		{2 * mib, unix.SEEK_HOLE, 2*mib + mib/2},
	} {
		got, err := unix.Seek(int(f.Fd()), s.from, s.whence)
		must(t, err)
		if got != s.want {
			t.Errorf("seek(%d, whence %d) in the copy = %d, want %d", s.from, s.whence, got, s.want)
		}
	}
}

func TestCopyErrors(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name string
		// setup makes src (a small tree) into what the case needs and returns Copy's arguments.
		setup func(t *testing.T, src, tmp string) (string, string)
		check func(t *testing.T, err error, src, dst string)
	}{{
		name: "dst exists",
		setup: func(t *testing.T, src, tmp string) (string, string) {
			dst := filepath.Join(tmp, "dst")
			must(t, os.Mkdir(dst, 0o755))
			writeFile(t, filepath.Join(dst, "keep"), []byte("keep"), 0o644)
			return src, dst
		},
		check: func(t *testing.T, err error, src, dst string) {
			if !errors.Is(err, fs.ErrExist) {
				t.Errorf("got %v, want an error wrapping fs.ErrExist", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "keep")); string(b) != "keep" {
				t.Error("dst's content was touched")
			}
			if _, err := os.Lstat(filepath.Join(dst, "file")); err == nil {
				t.Error("src was copied into the existing dst")
			}
		},
	}, {
		name: "dst's parent missing",
		setup: func(t *testing.T, src, tmp string) (string, string) {
			return src, filepath.Join(tmp, "no", "dst")
		},
		check: func(t *testing.T, err error, src, dst string) {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("got %v, want an error wrapping fs.ErrNotExist", err)
			}
		},
	}, {
		name: "src missing",
		setup: func(t *testing.T, src, tmp string) (string, string) {
			return filepath.Join(tmp, "nothing"), filepath.Join(tmp, "dst")
		},
		check: func(t *testing.T, err error, src, dst string) {
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), src) {
				t.Errorf("got %v, want an error wrapping fs.ErrNotExist naming %s", err, src)
			}
		},
	}, {
		name: "src is a symlink",
		setup: func(t *testing.T, src, tmp string) (string, string) {
			link := filepath.Join(tmp, "link")
			must(t, os.Symlink(src, link))
			return link, filepath.Join(tmp, "dst")
		},
		check: func(t *testing.T, err error, src, dst string) {
			if err == nil {
				t.Error("a symlink given as src was followed")
			}
			if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dst was created: %v", err)
			}
		},
	}, {
		name: "device node",
		setup: func(t *testing.T, src, tmp string) (string, string) {
			err := unix.Mknod(filepath.Join(src, "sub", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
			if errors.Is(err, unix.EPERM) {
				t.Skip("cannot create device nodes here")
			}
			must(t, err)
			return src, filepath.Join(tmp, "dst")
		},
		check: func(t *testing.T, err error, src, dst string) {
			if p := filepath.Join(src, "sub", "null"); err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("got %v, want an error naming %s", err, p)
			}
		},
	}, {
		name: "dst inside src",
		setup: func(t *testing.T, src, tmp string) (string, string) {
			return src, filepath.Join(src, "sub", "copy")
		},
		check: func(t *testing.T, err error, src, dst string) {
			if err == nil || !strings.Contains(err.Error(), "inside") {
				t.Errorf("got %v, want an error about dst inside src", err)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			src := filepath.Join(tmp, "src")
			must(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
			writeFile(t, filepath.Join(src, "file"), []byte("content"), 0o644)
			writeFile(t, filepath.Join(src, "sub", "more"), []byte("more"), 0o644)
			s, d := tc.setup(t, src, tmp)
			_, err := Copy(context.Background(), s, d, Options{})
			t.Logf("error: %v", err)
			tc.check(t, err, s, d)
		})
	}
}

// reflinkedSkip skips a test that needs content to be copied when the filesystem cloned it.
func reflinkedSkip(t *testing.T, s Stats) {
	t.Helper()
	if s.Reflinked > 0 {
		t.Skip("the filesystem clones files, which are neither throttled nor slow")
	}
}

func TestCopyCancellation(t *testing.T) {
	for _, tc := range []struct {
		name string
		// cancelAfter < 0 cancels before Copy starts.
		cancelAfter time.Duration
	}{
		{"before the copy", -1},
		// 8 MiB at 1 MiB/s would take 8s.
		{"during a throttled copy", 150 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, tmp := t.TempDir(), t.TempDir()
			writeFile(t, filepath.Join(src, "big"), randBytes(8*mib, 4), 0o644)
			dst := filepath.Join(tmp, "dst")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelAfter < 0 {
				cancel()
			} else {
				time.AfterFunc(tc.cancelAfter, cancel)
			}
			start := time.Now()
			s, err := Copy(ctx, src, dst, Options{BytesPerSecond: mib})
			elapsed := time.Since(start)
			if err == nil {
				reflinkedSkip(t, s)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want an error wrapping context.Canceled", err)
			}
			if elapsed > 4*time.Second {
				t.Errorf("Copy took %v to notice the cancellation", elapsed)
			}
			if tc.cancelAfter < 0 {
				if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("dst was created by a cancelled copy: %v", err)
				}
			}
		})
	}
}

func TestCopyBandwidthLimit(t *testing.T) {
	src := t.TempDir()
	// Two files, so that the limit holds across parallel copies.
	data := map[string][]byte{"a": randBytes(3*mib, 5), "b": randBytes(mib, 6)}
	for name, b := range data {
		writeFile(t, filepath.Join(src, name), b, 0o644)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	start := time.Now()
	s, err := Copy(context.Background(), src, dst, Options{BytesPerSecond: 8 * mib})
	elapsed := time.Since(start)
	must(t, err)
	reflinkedSkip(t, s)
	// 4 MiB at 8 MiB/s is 0.5s.
	if elapsed < 400*time.Millisecond {
		t.Errorf("copying 4 MiB at 8 MiB/s took %v, want at least 0.4s", elapsed)
	}
	for name, want := range data {
		got, err := os.ReadFile(filepath.Join(dst, name))
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", name)
		}
	}
}

func TestCopyProgress(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		// minCalls counts the final call.
		minCalls int
	}{
		{"unlimited", Options{}, 1},
		// About 10 MiB of data at 8 MiB/s takes over a second: the reporter ticks several
		// times before the end.
		{"throttled", Options{BytesPerSecond: 8 * mib}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			var sum int64
			for i := range 40 {
				dir := filepath.Join(src, fmt.Sprintf("d%d", i%5))
				must(t, os.MkdirAll(dir, 0o755))
				b := randBytes(i*1000+1, uint64(i))
				writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d", i)), b, 0o644)
				sum += int64(len(b))
			}
			// More than one piece of chunkSize, and holes that count as copied.
			writeSparse(t, filepath.Join(src, "big"), 12*mib, map[int64][]byte{0: randBytes(9*mib, 7)})
			sum += 12 * mib
			// A second name adds nothing to copy.
			must(t, os.Link(filepath.Join(src, "big"), filepath.Join(src, "big-link")))

			type call struct{ done, total int64 }
			var mu sync.Mutex
			var calls []call
			var inFlight atomic.Int32
			tc.opts.Progress = func(done, total int64) {
				if inFlight.Add(1) != 1 {
					t.Error("Progress called concurrently")
				}
				defer inFlight.Add(-1)
				mu.Lock()
				calls = append(calls, call{done, total})
				mu.Unlock()
			}
			start := time.Now()
			s, err := Copy(context.Background(), src, filepath.Join(t.TempDir(), "dst"), tc.opts)
			elapsed := time.Since(start)
			must(t, err)
			if tc.opts.BytesPerSecond > 0 {
				reflinkedSkip(t, s)
			}
			mu.Lock()
			got := append([]call(nil), calls...)
			mu.Unlock()

			if len(got) == 0 {
				t.Fatal("Progress was never called")
			}
			if len(got) < tc.minCalls || len(got) > int(elapsed/progressInterval)+1 {
				t.Errorf("%d calls in %v, want at least %d and at most one per %v and a final one", len(got), elapsed, tc.minCalls, progressInterval)
			}
			if last := got[len(got)-1]; last.done != sum || last.total != sum {
				t.Errorf("final call (%d, %d), want (%d, %d)", last.done, last.total, sum, sum)
			}
			for i, c := range got {
				if c.total != sum || c.done > c.total || (i > 0 && c.done < got[i-1].done) {
					t.Errorf("call %d: (%d, %d) after %v", i, c.done, c.total, got[:i])
				}
			}
			if s.Bytes != sum {
				t.Errorf("Stats.Bytes = %d, want %d", s.Bytes, sum)
			}
			time.Sleep(2 * progressInterval)
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != len(got) {
				t.Error("Progress called after Copy returned")
			}
		})
	}
}

func TestUsage(t *testing.T) {
	src := t.TempDir()
	p := func(rel string) string { return filepath.Join(src, rel) }
	must(t, os.MkdirAll(p("a/b"), 0o755))
	must(t, os.Mkdir(p("empty"), 0o755))
	writeFile(t, p("a/f"), randBytes(100, 8), 0o644)
	writeFile(t, p("a/b/zero"), nil, 0o644)
	writeFile(t, p("linked"), randBytes(1000, 9), 0o644)
	must(t, os.Link(p("linked"), p("a/b/linked-too")))
	writeSparse(t, p("sparse"), 3*mib, map[int64][]byte{mib: randBytes(10, 10)})
	must(t, os.Symlink("/etc", p("a/etc"))) // not followed, so /etc adds nothing
	must(t, unix.Mkfifo(p("fifo"), 0o644))
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must(t, err)
	must(t, unix.Bind(sock, &unix.SockaddrUnix{Name: p("sock")}))
	must(t, unix.Close(sock))

	n, entries, err := Usage(context.Background(), src)
	must(t, err)
	// a, a/b, empty, a/f, a/b/zero, linked, a/b/linked-too, sparse, a/etc, fifo; not sock.
	if want := int64(100 + 1000 + 3*mib); n != want || entries != 10 {
		t.Errorf("Usage = %d bytes, %d entries; want %d bytes, 10 entries", n, entries, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Usage(ctx, src); !errors.Is(err, context.Canceled) {
		t.Errorf("Usage with a cancelled context: got %v, want context.Canceled", err)
	}
	if _, _, err := Usage(context.Background(), p("a/f")); err == nil {
		t.Error("Usage of a regular file succeeded")
	}
}

// TestReadWriteFallback covers the copy through a buffer used where copy_file_range cannot
// work, which same-filesystem copies never reach.
func TestReadWriteFallback(t *testing.T) {
	dir := t.TempDir()
	// Not a multiple of the 1 MiB buffer, and more than one chunk.
	want := randBytes(chunkSize+mib+123, 11)
	writeFile(t, filepath.Join(dir, "src"), want, 0o644)
	src, err := os.Open(filepath.Join(dir, "src"))
	must(t, err)
	defer src.Close()
	dst, err := os.Create(filepath.Join(dir, "dst"))
	must(t, err)
	defer dst.Close()

	c := &copier{}
	r := rangeCopier{c: c, src: int(src.Fd()), dst: int(dst.Fd())}
	// Ask for more than there is: the copy stops at src's end.
	n, err := r.copyRange(context.Background(), 0, int64(len(want))+mib)
	must(t, err)
	if n != int64(len(want)) || c.done.Load() != n {
		t.Errorf("copied %d bytes, progress %d; want %d", n, c.done.Load(), len(want))
	}
	got, err := os.ReadFile(filepath.Join(dir, "dst"))
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Error("content differs")
	}
}

// TestReflink runs where FICLONE works: on the temp dir, or on $STORK_TEST_REFLINK_DIR (for
// example an XFS or btrfs mount). Cloned files are counted, counted as progress at once, and
// not throttled.
func TestReflink(t *testing.T) {
	dir := os.Getenv("STORK_TEST_REFLINK_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else {
		d, err := os.MkdirTemp(dir, "fscopy-test-")
		must(t, err)
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	src := filepath.Join(dir, "src")
	must(t, os.Mkdir(src, 0o755))
	data := randBytes(4*mib, 12)
	writeFile(t, filepath.Join(src, "f"), data, 0o644)
	writeFile(t, filepath.Join(src, "empty"), nil, 0o644)
	if err := probeReflink(filepath.Join(src, "f"), filepath.Join(dir, "probe")); err != nil {
		t.Skipf("no FICLONE on %s: %v (set STORK_TEST_REFLINK_DIR to an XFS or btrfs directory)", dir, err)
	}

	var final [2]int64
	// Copying 4 MiB at 1000 B/s would take over an hour: a throttled clone fails here.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Copy(ctx, src, filepath.Join(dir, "dst"), Options{
		BytesPerSecond: 1000,
		Progress:       func(done, total int64) { final = [2]int64{done, total} },
	})
	must(t, err)
	if s.Reflinked != 1 || s.Files != 2 {
		t.Errorf("stats %+v, want 2 files, 1 reflinked (an empty file has nothing to clone)", s)
	}
	if final != [2]int64{4 * mib, 4 * mib} {
		t.Errorf("final progress %v, want both %d", final, 4*mib)
	}
	got, err := os.ReadFile(filepath.Join(dir, "dst", "f"))
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Error("content differs")
	}
}

func probeReflink(src, dst string) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer os.Remove(dst)
	defer d.Close()
	return unix.IoctlFileClone(int(d.Fd()), int(s.Fd()))
}

// sortedKeys helps failure messages list what differs in a stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
