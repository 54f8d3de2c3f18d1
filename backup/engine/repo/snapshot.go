package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"stork.dev/stork/backup/engine/objstore"
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
	// BytesReused is the size of the files taken from the parent without being read.
	BytesReused int64 `json:"bytesReused,omitempty"`
	BlobsAdded  int64 `json:"blobsAdded"`
	BytesAdded  int64 `json:"bytesAdded"`
	BytesStored int64 `json:"bytesStored"`
	DurationMS  int64 `json:"durationMs"`
}

// SaveSnapshot writes a snapshot manifest and returns its ID.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) (ID, error) {
	id, sealed, err := r.putJSON(ctx, "snapshots/", s)
	if err == nil {
		r.cache.put("snapshots/"+id.String(), sealed) // the next backup's parent
	}
	return id, err
}

// LoadSnapshot reads a snapshot manifest from the store, always: check and the probes for a
// snapshot's existence need the store's answer. Others use CachedSnapshot.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	s := &Snapshot{}
	if _, err := r.getJSON(ctx, "snapshots/"+id.String(), id, s); err != nil {
		return nil, err
	}
	return s, nil
}

// CachedSnapshot returns a snapshot manifest (a copy the caller may change), from the ones
// already read (Snapshots, the prefetch at open) when it is there: a backup finds its parent
// and a restore of "latest" its snapshot by listing them, and read the manifest a second time
// before. Manifests never change once written, so a cached one is never stale.
func (r *Repository) CachedSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	r.snapMu.Lock()
	s, ok := r.snaps[id]
	r.snapMu.Unlock()
	if ok {
		c := *s
		return &c, nil
	}
	return r.readSnapshot(ctx, id)
}

// readSnapshot reads a manifest from the disk cache, or from the store into the cache.
func (r *Repository) readSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	key := "snapshots/" + id.String()
	if sealed, ok := r.cache.get(key); ok {
		s := &Snapshot{}
		if r.decodeJSON(key, id, sealed, s) == nil {
			return s, nil
		}
	}
	s := &Snapshot{}
	sealed, err := r.getJSON(ctx, key, id, s)
	if err != nil {
		return nil, err
	}
	r.cache.put(key, sealed)
	return s, nil
}

// SnapshotInfo is a snapshot with its ID.
type SnapshotInfo struct {
	ID ID
	*Snapshot
}

// Snapshots lists every snapshot, oldest first. Manifests never change, so those read once are
// kept: a process that keeps the repository open (an agent, a schedule) reads each only once.
// The others are read in parallel; one deleted meanwhile (forget) is left out.
func (r *Repository) Snapshots(ctx context.Context) ([]SnapshotInfo, error) {
	var ids []ID
	err := r.store.List(ctx, "snapshots/", func(o objstore.Object) error {
		id, err := ParseID(strings.TrimPrefix(o.Key, "snapshots/"))
		if err != nil {
			return fmt.Errorf("unexpected object %s: %w", o.Key, err)
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.snapMu.Lock()
	known := r.snaps
	r.snapMu.Unlock()
	var mu sync.Mutex
	listed := make(map[ID]*Snapshot, len(ids))
	var missing []string
	for _, id := range ids {
		if s, ok := known[id]; ok {
			listed[id] = s
		} else {
			missing = append(missing, id.String())
		}
	}
	err = forEach(ctx, missing, func(ctx context.Context, key string) error {
		id, _ := ParseID(key)
		s, err := r.readSnapshot(ctx, id)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		listed[id] = s
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.snapMu.Lock()
	r.snaps = listed // what is no longer listed was forgotten
	r.snapMu.Unlock()
	r.cache.prune("snapshots", func(name string) bool {
		id, err := ParseID(name)
		return err == nil && listed[id] != nil
	})
	out := make([]SnapshotInfo, 0, len(listed))
	for id, s := range listed {
		c := *s // a copy of the manifest, so that callers may set its fields
		out = append(out, SnapshotInfo{ID: id, Snapshot: &c})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out, nil
}

// adoptSnapshots puts the prefetched manifests that check out into the cache Snapshots keeps;
// one that does not is left for Snapshots to read, and report.
func (r *Repository) adoptSnapshots(p *prefetch) {
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	for key, sealed := range p.files {
		id, err := ParseID(strings.TrimPrefix(key, "snapshots/"))
		if err != nil {
			continue
		}
		s := &Snapshot{}
		if err := r.decodeJSON(key, id, sealed, s); err != nil {
			continue
		}
		r.cache.put(key, sealed)
		if r.snaps == nil {
			r.snaps = map[ID]*Snapshot{}
		}
		r.snaps[id] = s
	}
}

// Latest returns the newest snapshot that match accepts, or nil when there is none.
func (r *Repository) Latest(ctx context.Context, match func(SnapshotInfo) bool) (*SnapshotInfo, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		if match(snaps[i]) {
			return &snaps[i], nil
		}
	}
	return nil, nil
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
