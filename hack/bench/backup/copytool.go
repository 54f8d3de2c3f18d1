package main

// The "copy" reference tool: moves the dataset's bytes to the repository target and back with
// nothing else (no chunking, hashing, compression, encryption or index), four files at a time.
// It is not a backup tool; it measures what the machine itself costs, so that a target can be
// read against the floor: a tool cannot restore faster than the copy writes the same files,
// and over S3 the copy pays for the MinIO server that shares the machine's cores.

import (
	"context"
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

const copyWorkers = 4

// copyTool is the bench binary run as `copy-tool backup|restore FROM TO`, where the repository
// side is a directory or s3://BUCKET/PREFIX (MinIO endpoint and keys in COPY_S3_* variables).
func copyTool(ctx context.Context, args []string) error {
	if len(args) != 3 || (args[0] != "backup" && args[0] != "restore") {
		return fmt.Errorf("usage: copy-tool backup|restore FROM TO")
	}
	op, from, to := args[0], args[1], args[2]
	repoSide := to
	if op == "restore" {
		repoSide = from
	}
	var s3 *minio.Client
	var bkt, prefix string
	if rest, ok := strings.CutPrefix(repoSide, "s3://"); ok {
		bkt, prefix, _ = strings.Cut(rest, "/")
		var err error
		s3, err = minio.New(os.Getenv("COPY_S3_HOST"), &minio.Options{
			Creds: credentials.NewStaticV4(os.Getenv("COPY_S3_ACCESS_KEY"), os.Getenv("COPY_S3_SECRET_KEY"), "")})
		if err != nil {
			return err
		}
	}

	// Every file to move, as a slash path relative to the source.
	var files []string
	if s3 != nil && op == "restore" {
		for o := range s3.ListObjects(ctx, bkt, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
			if o.Err != nil {
				return o.Err
			}
			files = append(files, strings.TrimPrefix(o.Key, prefix+"/"))
		}
	} else {
		err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				rel, _ := filepath.Rel(from, p)
				files = append(files, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			return err
		}
	}

	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(copyWorkers)
	for _, rel := range files {
		g.Go(func() error {
			switch {
			case s3 != nil && op == "backup":
				f, err := os.Open(filepath.Join(from, rel))
				if err != nil {
					return err
				}
				defer f.Close()
				info, err := f.Stat()
				if err != nil {
					return err
				}
				// No SHA-256 of the body, as the cheapest S3 client would send it.
				_, err = s3.PutObject(ctx, bkt, prefix+"/"+rel, f, info.Size(), minio.PutObjectOptions{DisableContentSha256: true})
				return err
			case s3 != nil:
				o, err := s3.GetObject(ctx, bkt, prefix+"/"+rel, minio.GetObjectOptions{})
				if err != nil {
					return err
				}
				defer o.Close()
				return writeFile(filepath.Join(to, filepath.FromSlash(rel)), o)
			default:
				f, err := os.Open(filepath.Join(from, filepath.FromSlash(rel)))
				if err != nil {
					return err
				}
				defer f.Close()
				return writeFile(filepath.Join(to, filepath.FromSlash(rel)), f)
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if s3 == nil && op == "backup" {
		// Backups make their data durable before they report success (the tools fsync each
		// pack); one syncfs stands for that here. Restores do not.
		if err := syncFS(to); err != nil {
			return err
		}
	}
	fmt.Printf("copied %d files\n", len(files))
	return nil
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
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
