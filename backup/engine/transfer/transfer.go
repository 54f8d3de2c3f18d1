package transfer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// Error is a failure with a reason for a status field (e.g. "UploadFailed", "BackupNotFound").
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Fail makes an Error from a reason and a message.
func Fail(reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf is err's reason, or def when it carries none.
func ReasonOf(err error, def string) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return def
}

// Repo is an open repository with the URL of its location, for messages.
type Repo struct {
	*repo.Repository
	URL string
}

// Close releases the repository and its store.
func (r *Repo) Close() {
	r.Repository.Close()
	_ = r.Store().Close()
}

// Open opens the repository an access Secret describes. Failures carry the reason for status:
// what is wrong with the store (objstore.Problem), or RepositoryUnavailable. With cacheRoot
// set, the repository's snapshot manifests are kept under it between tasks (one directory per
// store: repo.OpenOptions.CacheDir), so that a scheduled backup does not read every manifest
// again to find its parent.
func Open(ctx context.Context, access access.Access, cacheRoot string) (*Repo, error) {
	store, err := objstore.Open(ctx, access.Store)
	if err != nil {
		return nil, Fail(objstore.Problem(err), "opening %s: %w", access.Store.URL, err)
	}
	var opts repo.OpenOptions
	if cacheRoot != "" {
		opts.CacheDir = filepath.Join(cacheRoot, access.Store.CacheName())
	}
	r, err := repo.OpenWith(ctx, store, access.Key, opts)
	if err != nil {
		_ = store.Close()
		return nil, Fail("RepositoryUnavailable", "opening the repository in %s: %w", access.Store.URL, err)
	}
	return &Repo{Repository: r, URL: store.String()}, nil
}

// FilesProgress is the engine's progress as a status's: items are files.
func FilesProgress(p archive.Progress) storkv1.Progress {
	return storkv1.Progress{BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, BytesSkipped: p.BytesSkipped, ItemsDone: p.FilesDone, ItemsTotal: p.FilesTotal}
}

// UploadOptions tune an Upload.
type UploadOptions struct {
	// Tags to record with the backup; cluster, namespace and pvc also choose its parent.
	Tags map[string]string
	// Exclude, if set, leaves entries out (see archive.BackupOptions).
	Exclude func(rel string) bool
	// StrictChangeDetection reads every file, even those unchanged since the parent.
	StrictChangeDetection bool
	// Progress is called about every 200ms and at the end.
	Progress func(storkv1.Progress)
	// Prescan, if set, is src listed while the repository was being opened
	// (archive.StartPrescan, started before Open).
	Prescan *archive.Prescan
}

// Upload backs the tree at src up and returns the backup's ID and size. The newest earlier
// backup with the same cluster, namespace and pvc tags is the parent: files whose metadata
// matches its entries are taken from it unread, unless o.StrictChangeDetection; and chunks the
// repository has are never sent again. A backup is visible only once complete (the engine
// writes its snapshot manifest last), so an interrupted upload is started again from the
// beginning and reuses the packs the first attempt wrote.
func Upload(ctx context.Context, r *Repo, src string, o UploadOptions) (string, int64, error) {
	opts := archive.BackupOptions{Tags: o.Tags, Exclude: o.Exclude, StrictChangeDetection: o.StrictChangeDetection, Prescan: o.Prescan}
	if o.Progress != nil {
		opts.Progress = func(p archive.Progress) { o.Progress(FilesProgress(p)) }
	}
	parent, err := r.Latest(ctx, func(s repo.SnapshotInfo) bool {
		return s.Tags["cluster"] == o.Tags["cluster"] && s.Tags["namespace"] == o.Tags["namespace"] && s.Tags["pvc"] == o.Tags["pvc"]
	})
	if err != nil {
		return "", 0, Fail("RepositoryUnavailable", "listing the backups in %s: %w", r.URL, err)
	}
	if parent != nil {
		opts.Parent = &parent.ID
	}
	id, snap, err := archive.Backup(ctx, r.Repository, src, opts)
	if err != nil {
		return "", 0, &Error{Reason: "UploadFailed", Err: fmt.Errorf("backing up %s to %s: %w", src, r.URL, err)}
	}
	return id.String(), snap.Summary.Bytes, nil
}

// DownloadOptions tune a Download.
type DownloadOptions struct {
	// Verify reads the volume back once written and compares it with the backup.
	Verify bool
	// Ignore names entries of dst's root that verification accepts though the backup does
	// not hold them (a file system's lost+found).
	Ignore []string
	// Paths restores only these slash-separated paths of the backup; empty restores all.
	Paths []string
	// Progress is called about every 200ms and at the end of the restore.
	Progress func(storkv1.Progress)
}

// Download restores the backup id into dst (made if missing) and returns the bytes restored,
// and with o.Verify what verification found. A backup that is not in the repository fails
// with BackupNotFound, told apart from one that fails to restore (DownloadFailed) and one whose
// restored files differ from it (VerificationFailed).
func Download(ctx context.Context, r *Repo, id, dst string, o DownloadOptions) (int64, *storkv1.Verification, error) {
	snapID, err := repo.ParseID(id)
	if err != nil {
		return 0, nil, Fail("InvalidTask", "repository snapshot ID %q: %w", id, err)
	}
	if _, err := r.LoadSnapshot(ctx, snapID); errors.Is(err, objstore.ErrNotFound) {
		return 0, nil, Fail("BackupNotFound", "backup %s is not in the repository at %s", snapID, r.URL)
	} else if err != nil {
		return 0, nil, Fail("DownloadFailed", "reading backup %s in %s: %w", snapID, r.URL, err)
	}
	var size atomic.Int64
	opts := archive.RestoreOptions{Include: o.Paths, Progress: func(p archive.Progress) {
		size.Store(p.BytesTotal)
		if o.Progress != nil {
			o.Progress(FilesProgress(p))
		}
	}}
	if err := archive.Restore(ctx, r.Repository, snapID, dst, opts); err != nil {
		return 0, nil, &Error{Reason: "DownloadFailed", Err: fmt.Errorf("restoring backup %s from %s: %w", snapID, r.URL, err)}
	}
	if !o.Verify {
		return size.Load(), nil, nil
	}
	v, err := Verify(ctx, r, snapID, dst, o.Ignore)
	return size.Load(), v, err
}

// Verify compares the restored tree at dst with backup id (archive.Verify).
func Verify(ctx context.Context, r *Repo, id repo.ID, dst string, ignore []string) (*storkv1.Verification, error) {
	start := time.Now()
	rep, err := archive.Verify(ctx, r.Repository, id, dst, archive.VerifyOptions{Ignore: ignore})
	if err != nil {
		return nil, &Error{Reason: "VerificationFailed", Err: fmt.Errorf("verifying the restore of backup %s from %s: %w", id, r.URL, err)}
	}
	if err := rep.Err(); err != nil {
		return nil, &Error{Reason: "VerificationFailed", Err: fmt.Errorf("the restored volume differs from backup %s in %s: %w", id, r.URL, err)}
	}
	return &storkv1.Verification{Files: rep.Files, Bytes: rep.Bytes, Duration: metav1.Duration{Duration: time.Since(start).Round(time.Millisecond)}}, nil
}
