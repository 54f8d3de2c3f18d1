package repo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"stork.dev/stork/backup/objstore"
)

// Snapshot is the manifest of one backed-up tree. Writing it is the last step of a backup: a
// backup exists exactly when its snapshot object does.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Tree is the root directory's tree blob.
	Tree ID `json:"tree"`
	// Paths that were backed up (the source directory, as given).
	Paths []string `json:"paths"`
	// Parent is the snapshot this one was made incrementally from, if any.
	Parent *ID `json:"parent,omitempty"`
	// Tags: cluster, namespace, pvc, snapshot, zone, and whatever the caller adds.
	Tags map[string]string `json:"tags,omitempty"`
	// Summary of what the backup read and wrote.
	Summary SnapshotSummary `json:"summary"`
}

// SnapshotSummary counts a backup's work.
type SnapshotSummary struct {
	Files       int64 `json:"files"`
	Dirs        int64 `json:"dirs"`
	Bytes       int64 `json:"bytes"`
	FilesReused int64 `json:"filesReused"`
	BlobsAdded  int64 `json:"blobsAdded"`
	BytesAdded  int64 `json:"bytesAdded"`
	BytesStored int64 `json:"bytesStored"`
	DurationMS  int64 `json:"durationMs"`
}

// SaveSnapshot writes a snapshot manifest and returns its ID.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) (ID, error) {
	return r.putJSON(ctx, "snapshots/", s)
}

// LoadSnapshot reads a snapshot manifest.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	s := &Snapshot{}
	if err := r.getJSON(ctx, "snapshots/"+id.String(), id, s); err != nil {
		return nil, err
	}
	return s, nil
}

// SnapshotInfo is a snapshot with its ID.
type SnapshotInfo struct {
	ID ID
	*Snapshot
}

// Snapshots lists every snapshot, oldest first.
func (r *Repository) Snapshots(ctx context.Context) ([]SnapshotInfo, error) {
	var out []SnapshotInfo
	err := r.store.List(ctx, "snapshots/", func(o objstore.Object) error {
		id, err := ParseID(strings.TrimPrefix(o.Key, "snapshots/"))
		if err != nil {
			return fmt.Errorf("unexpected object %s: %w", o.Key, err)
		}
		s, err := r.LoadSnapshot(ctx, id)
		if err != nil {
			return err
		}
		out = append(out, SnapshotInfo{ID: id, Snapshot: s})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, err
}

// FindSnapshot resolves a snapshot by ID or unique ID prefix; "latest" is the newest.
func (r *Repository) FindSnapshot(ctx context.Context, ref string) (SnapshotInfo, error) {
	all, err := r.Snapshots(ctx)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if ref == "latest" {
		if len(all) == 0 {
			return SnapshotInfo{}, fmt.Errorf("the repository has no snapshots")
		}
		return all[len(all)-1], nil
	}
	var found []SnapshotInfo
	for _, s := range all {
		if strings.HasPrefix(s.ID.String(), ref) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return SnapshotInfo{}, fmt.Errorf("no snapshot %q in the repository", ref)
	case 1:
		return found[0], nil
	}
	return SnapshotInfo{}, fmt.Errorf("snapshot prefix %q is ambiguous: %d snapshots match", ref, len(found))
}
