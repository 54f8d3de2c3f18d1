package main

// The "copy" reference tool: moves the dataset's bytes to the repository target and back with
// nothing else — no chunking, hashing, compression, encryption or deduplication. Files are
// concatenated into objects of about 32 MiB (as backup tools pack their chunks: one object per
// file costs MinIO far more than the bytes, 45 s for this dataset), four objects in flight, and
// a manifest says where each file is. It is not a backup tool; it measures what the machine
// itself costs, so that a target can be read against the floor: a tool cannot restore faster
// than this writes the same files, and over S3 the copy pays for the MinIO server that shares
// the machine's cores.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

const (
	copyWorkers  = 4
	copyPackSize = 32 << 20
)

// copyEntry is a file's place in the copy's packs.
type copyEntry struct {
	Path string `json:"path"` // slash-separated, relative to the source
	Pack int    `json:"pack"`
	Size int64  `json:"size"`
}

// copyRepo is where the packs and the manifest go: a directory or a bucket prefix.
type copyRepo struct {
	dir         string
	s3          *minio.Client
	bkt, prefix string
}

func openCopyRepo(loc string) (*copyRepo, error) {
	rest, ok := strings.CutPrefix(loc, "s3://")
	if !ok {
		return &copyRepo{dir: loc}, nil
	}
	r := &copyRepo{}
	r.bkt, r.prefix, _ = strings.Cut(rest, "/")
	var err error
	r.s3, err = minio.New(os.Getenv("COPY_S3_HOST"), &minio.Options{
		Creds: credentials.NewStaticV4(os.Getenv("COPY_S3_ACCESS_KEY"), os.Getenv("COPY_S3_SECRET_KEY"), "")})
	return r, err
}

func (r *copyRepo) put(ctx context.Context, name string, body io.Reader, size int64) error {
	if r.s3 != nil {
		// No SHA-256 of the body, as the cheapest S3 client would send it.
		_, err := r.s3.PutObject(ctx, r.bkt, r.prefix+"/"+name, body, size, minio.PutObjectOptions{DisableContentSha256: true})
		return err
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	return writeFile(filepath.Join(r.dir, name), body)
}

func (r *copyRepo) get(ctx context.Context, name string) (io.ReadCloser, error) {
	if r.s3 != nil {
		return r.s3.GetObject(ctx, r.bkt, r.prefix+"/"+name, minio.GetObjectOptions{})
	}
	return os.Open(filepath.Join(r.dir, name))
}

// copyTool is the bench binary run as `copy-tool backup SRC REPO` or `copy-tool restore REPO
// DST`, where REPO is a directory or s3://BUCKET/PREFIX (MinIO endpoint and keys in COPY_S3_*).
func copyTool(ctx context.Context, args []string) error {
	if len(args) != 3 || (args[0] != "backup" && args[0] != "restore") {
		return fmt.Errorf("usage: copy-tool backup SRC REPO | copy-tool restore REPO DST")
	}
	if args[0] == "backup" {
		return copyBackup(ctx, args[1], args[2])
	}
	return copyRestore(ctx, args[1], args[2])
}

func copyBackup(ctx context.Context, src, loc string) error {
	r, err := openCopyRepo(loc)
	if err != nil {
		return err
	}
	var entries []copyEntry
	var packSize []int64
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if len(packSize) == 0 || packSize[len(packSize)-1] >= copyPackSize {
			packSize = append(packSize, 0)
		}
		rel, _ := filepath.Rel(src, p)
		entries = append(entries, copyEntry{Path: filepath.ToSlash(rel), Pack: len(packSize) - 1, Size: info.Size()})
		packSize[len(packSize)-1] += info.Size()
		return nil
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copyWorkers)
	for pack, size := range packSize {
		g.Go(func() error {
			pr, pw := io.Pipe()
			go func() {
				var err error
				for _, e := range entries {
					if e.Pack == pack && err == nil {
						err = appendFile(pw, filepath.Join(src, filepath.FromSlash(e.Path)))
					}
				}
				pw.CloseWithError(err)
			}()
			err := r.put(gctx, fmt.Sprintf("pack-%d", pack), pr, size)
			pr.CloseWithError(err)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	manifest, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	if err := r.put(ctx, "manifest.json", strings.NewReader(string(manifest)), int64(len(manifest))); err != nil {
		return err
	}
	if r.s3 == nil {
		// Backups make their data durable before they report success (the tools fsync each
		// pack); one syncfs stands for that here.
		d, err := os.Open(r.dir)
		if err != nil {
			return err
		}
		defer d.Close()
		if err := unix.Syncfs(int(d.Fd())); err != nil {
			return err
		}
	}
	fmt.Printf("copied %d files in %d packs\n", len(entries), len(packSize))
	return nil
}

func appendFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func copyRestore(ctx context.Context, loc, dst string) error {
	r, err := openCopyRepo(loc)
	if err != nil {
		return err
	}
	mf, err := r.get(ctx, "manifest.json")
	if err != nil {
		return err
	}
	var entries []copyEntry
	err = json.NewDecoder(mf).Decode(&entries)
	mf.Close()
	if err != nil {
		return fmt.Errorf("reading the manifest: %w", err)
	}
	packs := map[int][]copyEntry{}
	for _, e := range entries {
		packs[e.Pack] = append(packs[e.Pack], e)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copyWorkers)
	for pack, files := range packs {
		g.Go(func() error {
			body, err := r.get(gctx, fmt.Sprintf("pack-%d", pack))
			if err != nil {
				return err
			}
			defer body.Close()
			for _, e := range files {
				if err := writeFile(filepath.Join(dst, filepath.FromSlash(e.Path)), io.LimitReader(body, e.Size)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Printf("copied %d files from %d packs\n", len(entries), len(packs))
	return nil
}

func writeFile(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	return errors.Join(err, f.Close())
}
