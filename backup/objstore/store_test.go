package objstore

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct{ url, want string }{
		{"ftp://host/x", `unsupported scheme "ftp"`},
		{"file://relative/dir", "needs an absolute path"},
		{"s3://bucket", "s3 credentials are incomplete"},
		{"gs://bucket", "gs credentials are missing"},
		{"azblob://container", "azblob credentials are incomplete"},
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
