package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct{ url, want string }{
		{"ftp://host/x", `unsupported scheme "ftp"`},
		{"file://relative/dir", "needs an absolute path"},
		{"s3://bucket", "s3 credentials are incomplete"},
		{"gs://bucket", "gs credentials are missing"},
		{"azblob://container", "azblob credentials are incomplete"},
		{"s3://bk/prefix", `bucket "bk" is not a valid name: use 3 to 63 lowercase letters`},
		{"s3://Backups", `bucket "Backups" is not a valid name`},
		{"gs://My-bucket", `bucket "My-bucket" is not a valid name: use 3 to 222 lowercase letters, digits, dots, hyphens and underscores`},
		{"gs://my_bucket", "gs credentials are missing"},
		{"azblob://-container", `bucket "-container" is not a valid name`},
		{"azblob://a.container", `bucket "a.container" is not a valid name: use 3 to 63 lowercase letters, digits and hyphens`},
		{"s3://a.b-c", "s3 credentials are incomplete"},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			_, err := Open(ctx, Config{URL: tc.url})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWriteOnceAndList(t *testing.T) {
	ctx := context.Background()
	for _, url := range []string{"mem://", "file://" + t.TempDir()} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			s, err := Open(ctx, Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if ok, err := s.PutNew(ctx, "data/ab/x", []byte("first")); err != nil || !ok {
				t.Fatalf("first put: %v %v", ok, err)
			}
			if ok, err := s.PutNew(ctx, "data/ab/x", []byte("second")); err != nil || ok {
				t.Fatalf("second put of the same key: ok=%v err=%v; want ok=false and no error", ok, err)
			}
			if got, err := s.Get(ctx, "data/ab/x"); err != nil || string(got) != "first" {
				t.Fatalf("the object was overwritten: %q %v", got, err)
			}
			if got, err := s.GetRange(ctx, "data/ab/x", 1, 3); err != nil || string(got) != "irs" {
				t.Fatalf("range read: %q %v", got, err)
			}
			if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get of a missing object: %v", err)
			}
			s.PutNew(ctx, "index/1", []byte("i"))
			var keys []string
			if err := s.List(ctx, "data/", func(o Object) error { keys = append(keys, o.Key); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || keys[0] != "data/ab/x" {
				t.Fatalf("listing data/: %v", keys)
			}
			if err := s.Delete(ctx, "data/ab/x"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "data/ab/x"); err != nil {
				t.Fatalf("deleting a missing object: %v", err)
			}
		})
	}
}

// An object stored in a directory is on disk and out of the page cache (mincore counts its
// resident pages): a backup must not fill the cache with packs it will not read.
func TestDirPutLeavesNoCachedPages(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, whose pages are the file")
	}
	ctx := context.Background()
	s, err := Open(ctx, Config{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if ok, err := s.PutNew(ctx, "data/ab/pack", data); !ok || err != nil {
		t.Fatalf("put: %v %v", ok, err)
	}
	f, err := os.Open(filepath.Join(dir, "data", "ab", "pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, len(data)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident > len(vec)/10 {
		t.Errorf("%d of the object's %d pages are still in the page cache", resident, len(vec))
	}
}

// Processes racing to create one key in a directory store: exactly one wins (link(2) is
// atomic, unlike fileblob's stat-then-rename).
func TestDirPutNewIsExclusiveAcrossStores(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 16
	wins := make(chan bool, n)
	for i := range n {
		go func() {
			s, err := Open(ctx, Config{URL: "file://" + dir})
			if err != nil {
				t.Error(err)
				wins <- false
				return
			}
			ok, err := s.PutNew(ctx, "config", []byte{byte(i)})
			if err != nil {
				t.Error(err)
			}
			wins <- ok
		}()
	}
	won := 0
	for range n {
		if <-wins {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d writers created the same key", won)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only config (no temporary files left)", len(entries))
	}
}

func TestDirKeysAndListing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../x", "a/../../x", "/abs", "a//b", ".tmp-x", ""} {
		if _, err := s.PutNew(ctx, bad, nil); err == nil || !strings.Contains(err.Error(), "invalid object key") {
			t.Errorf("key %q: %v", bad, err)
		}
	}
	for _, k := range []string{"data/ab/2", "data/ab/1", "data/a0/9", "data-x", "index/1", "data/ab-c"} {
		if _, err := s.PutNew(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "data", "ab", ".tmp-123"), nil, 0o600) // a write in progress
	var keys []string
	s.List(ctx, "data/", func(o Object) error { keys = append(keys, o.Key); return nil })
	want := "data/a0/9 data/ab-c data/ab/1 data/ab/2"
	if strings.Join(keys, " ") != want {
		t.Errorf("listing data/: %v, want %s", keys, want)
	}
}

// Staging files a killed process left behind are removed when the store is next opened; fresh
// ones, which a running process may be writing, stay.
func TestStaleStagingFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	stale, fresh := filepath.Join(dir, tmpPrefix+"old"), filepath.Join(dir, tmpPrefix+"new")
	os.WriteFile(stale, []byte("x"), 0o600)
	os.WriteFile(fresh, []byte("x"), 0o600)
	old := time.Now().Add(-25 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := Open(context.Background(), Config{URL: "file://" + dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("a day-old staging file survived")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh staging file was removed: %v", err)
	}
}

// TestS3Writes: over plain HTTP (an in-cluster MinIO) every upload is signed as UNSIGNED-PAYLOAD
// and carries no checksum header, for an object small enough for one PUT, one uploaded in parts,
// and a staging file (one PUT of the whole file, whatever its size); a staging file whose key
// exists (412) is reported as not written, without an error. The server records each write.
func TestS3Writes(t *testing.T) {
	var mu sync.Mutex
	var writes []http.Header
	s := fakeS3(t, S3Options{}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/exists"):
			w.WriteHeader(http.StatusPreconditionFailed)
		case r.Method == http.MethodPut:
			mu.Lock()
			writes = append(writes, r.Header.Clone())
			mu.Unlock()
			w.Header().Set("ETag", `"e"`)
		default:
			w.WriteHeader(http.StatusNotImplemented)
		}
	})
	ctx := context.Background()
	f, err := s.TempFile()
	if err != nil {
		t.Fatal(err)
	}
	defer Discard(f)
	if _, err := f.Write(make([]byte, 40<<20)); err != nil {
		t.Fatal(err)
	}
	// Each write is one PUT with its length, small or over the transfer manager's multipart
	// threshold (16 MiB), from memory or from a staging file.
	writesOf := []struct {
		what string
		size int
		put  func(key string) (bool, error)
	}{
		{"1 KiB from memory", 1 << 10, func(key string) (bool, error) { return s.PutNew(ctx, key, make([]byte, 1<<10)) }},
		{"20 MiB from memory", 20 << 20, func(key string) (bool, error) { return s.PutNew(ctx, key, make([]byte, 20<<20)) }},
		{"a 40 MiB staging file", 40 << 20, func(key string) (bool, error) { return s.PutNewFile(ctx, key, f) }},
	}
	for _, w := range writesOf {
		n := len(writes)
		if ok, err := w.put("obj"); !ok || err != nil {
			t.Fatalf("writing %s: ok %v, %v", w.what, ok, err)
		}
		if got := len(writes) - n; got != 1 {
			t.Errorf("writing %s took %d PUT requests, want 1", w.what, got)
		} else if l := writes[n].Get("Content-Length"); l != fmt.Sprint(w.size) {
			t.Errorf("the PUT of %s has Content-Length %q", w.what, l)
		}
		if ok, err := w.put("exists"); ok || err != nil {
			t.Errorf("writing %s over an existing key: ok %v, %v; want false, nil", w.what, ok, err)
		}
	}
	for i, h := range writes {
		if got := h.Get("X-Amz-Content-Sha256"); got != "UNSIGNED-PAYLOAD" {
			t.Errorf("write %d: X-Amz-Content-Sha256 %q, want UNSIGNED-PAYLOAD", i, got)
		}
		for name := range h {
			if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-") || strings.EqualFold(name, "X-Amz-Sdk-Checksum-Algorithm") {
				t.Errorf("write %d: checksum header %s sent", i, name)
			}
		}
	}
}

// TestS3ResponseTimeout: a store that takes a request and never answers fails the call once
// S3Options.ResponseTimeout has passed, rather than holding it for as long as its context
// lives (the SDK's client sets no such bound).
func TestS3ResponseTimeout(t *testing.T) {
	release := make(chan struct{})
	s := fakeS3(t, S3Options{ResponseTimeout: 100 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		select { // hung: reads the request, never answers
		case <-release:
		case <-r.Context().Done():
		}
	})
	// Before the server closes (a cleanup), which waits for its handlers.
	defer close(release)
	// Fails, not hangs, without the bound.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.attempts = 1
	start := time.Now()
	_, err := s.Get(ctx, "config")
	if err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("reading from a store that never answers: %v; want a response timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the read failed after %v", d)
	}
}

// TestS3RetriesInOneLayer: a call to a store that keeps failing is sent once per attempt of
// Store.retry, not also retried inside each attempt by the SDK (which made 3 × 8 requests, and
// 3 × 8 response timeouts for a store that never answers); what the SDK's retryer retried is
// still retried, and what it did not is not.
func TestS3RetriesInOneLayer(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		want   int32 // requests for 3 attempts
	}{
		{http.StatusServiceUnavailable, "SlowDown", 3},
		{http.StatusBadRequest, "RequestTimeout", 3}, // S3: the body came too slowly
		{http.StatusForbidden, "AccessDenied", 1},
		{http.StatusBadRequest, "InvalidArgument", 1},
	} {
		for _, op := range []string{"read", "write"} {
			t.Run(fmt.Sprintf("%s %d %s", op, c.status, c.code), func(t *testing.T) {
				var requests atomic.Int32
				s := fakeS3(t, S3Options{}, func(w http.ResponseWriter, r *http.Request) {
					requests.Add(1)
					w.WriteHeader(c.status)
					fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>no</Message></Error>`, c.code)
				})
				s.attempts, s.baseDelay = 3, time.Millisecond
				ctx := context.Background()
				var err error
				if op == "read" {
					_, err = s.Get(ctx, "config")
				} else {
					_, err = s.PutNew(ctx, "config", []byte("x"))
				}
				if err == nil || !strings.Contains(err.Error(), strconv.Itoa(c.status)) {
					t.Fatalf("%s from a store that answers %d %s: %v; want the %d", op, c.status, c.code, err, c.status)
				}
				if n := requests.Load(); n != c.want {
					t.Errorf("the store got %d requests; want %d", n, c.want)
				}
			})
		}
	}
}

// TestS3ClockSkewCorrected: a node whose clock is off by more than S3 allows (15 minutes) gets
// RequestTimeTooSkewed once; the SDK learns the offset from the answer's Date header, and the
// retry, signed with the corrected time, succeeds. With the SDK's retryer gone, that retry is
// Store.retry's, for reads (through gocloud) and writes (our own PUT) alike.
func TestS3ClockSkewCorrected(t *testing.T) {
	for _, op := range []string{"read", "write"} {
		t.Run(op, func(t *testing.T) {
			serverNow := func() time.Time { return time.Now().Add(time.Hour) }
			var requests atomic.Int32
			s := fakeS3(t, S3Options{}, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", serverNow().UTC().Format(http.TimeFormat))
				requests.Add(1)
				signed, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
				if err != nil || serverNow().Sub(signed).Abs() > 15*time.Minute {
					w.WriteHeader(http.StatusForbidden)
					fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>RequestTimeTooSkewed</Code>`+
						`<Message>The difference between the request time and the server's time is too large.</Message></Error>`)
					return
				}
				fmt.Fprint(w, "data")
			})
			s.baseDelay = time.Millisecond
			ctx := context.Background()
			if op == "read" {
				data, err := s.Get(ctx, "config")
				if err != nil || string(data) != "data" {
					t.Fatalf("reading with the node's clock an hour behind the store's: %q, %v", data, err)
				}
			} else if _, err := s.PutNew(ctx, "config", []byte("x")); err != nil {
				t.Fatalf("writing with the node's clock an hour behind the store's: %v", err)
			}
			if n := requests.Load(); n != 2 {
				t.Errorf("%d requests; want 2 (one skewed, one corrected)", n)
			}
		})
	}
}

// fakeS3 serves handler as an S3 endpoint and opens a Store on it (bucket bkt, prefix p) with
// opts. The bucket has no Object Lock: that question is answered here, without a Date header,
// so that the SDK learns no clock offset from it.
func fakeS3(t *testing.T, opts S3Options, handler http.HandlerFunc) *Store {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Has("object-lock") {
			w.Header()["Date"] = nil
			w.WriteHeader(http.StatusNotFound)
			return
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	opts.Endpoint, opts.ForcePathStyle = srv.URL, true
	s, err := Open(context.Background(), Config{URL: "s3://bkt/p", S3: opts,
		Credentials: Credentials{AccessKeyID: "id", SecretAccessKey: "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
