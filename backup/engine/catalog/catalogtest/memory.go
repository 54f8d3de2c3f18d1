package catalogtest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo"
)

// Memory is a catalog in memory. It also serves as the Catalogs of every location (Catalog).
type Memory struct {
	mu    sync.Mutex
	snaps []repo.SnapshotInfo // oldest first
	recs  map[repo.ID][]byte  // record JSON, as the repository would keep it
	objs  map[repo.ID][]*unstructured.Unstructured
	fail  map[string]error
	n     int
}

// New returns an empty catalog.
func New() *Memory {
	return &Memory{recs: map[repo.ID][]byte{}, objs: map[repo.ID][]*unstructured.Unstructured{}, fail: map[string]error{}}
}

// Fail makes the operation (a method name: "WriteRecord", "Records", …) return err until
// Fail(op, nil).
func (m *Memory) Fail(op string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.fail, op)
	} else {
		m.fail[op] = err
	}
}

// Catalog returns m for any location.
func (m *Memory) Catalog(context.Context, *storkv1.BackupLocation) (catalog.Catalog, error) {
	return m, nil
}

// Snapshots lists what was written, oldest first.
func (m *Memory) Snapshots() []repo.SnapshotInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]repo.SnapshotInfo(nil), m.snaps...)
}

// add records a snapshot with tags and returns its ID; the caller holds mu.
func (m *Memory) add(tags map[string]string) repo.ID {
	m.n++
	id := repo.ID(sha256.Sum256(fmt.Appendf(nil, "snapshot %d", m.n)))
	m.snaps = append(m.snaps, repo.SnapshotInfo{ID: id, Snapshot: &repo.Snapshot{Time: time.Unix(int64(m.n), 0), Tags: tags}})
	return id
}

func (m *Memory) Find(_ context.Context, kind, uid string) (*repo.SnapshotInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail["Find"]; err != nil {
		return nil, err
	}
	for i := len(m.snaps) - 1; i >= 0; i-- {
		if s := m.snaps[i]; s.Tags[catalog.TagKind] == kind && s.Tags[catalog.TagBackupUID] == uid {
			return &s, nil
		}
	}
	return nil, nil
}

func (m *Memory) WriteRecord(_ context.Context, rec *catalog.Record) (repo.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail["WriteRecord"]; err != nil {
		return repo.ID{}, err
	}
	rec.Version = catalog.RecordVersion
	data, err := json.Marshal(rec)
	if err != nil {
		return repo.ID{}, err
	}
	id := m.add(rec.Tags(catalog.KindRecord))
	m.recs[id] = data
	return id, nil
}

func (m *Memory) WriteResources(_ context.Context, rec *catalog.Record, objs []*unstructured.Unstructured) (repo.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail["WriteResources"]; err != nil {
		return repo.ID{}, err
	}
	id := m.add(rec.Tags(catalog.KindResources))
	for _, o := range objs {
		m.objs[id] = append(m.objs[id], o.DeepCopy())
	}
	return id, nil
}

func (m *Memory) ReadRecord(_ context.Context, id repo.ID) (*catalog.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail["ReadRecord"]; err != nil {
		return nil, err
	}
	data, ok := m.recs[id]
	if !ok {
		return nil, fmt.Errorf("snapshot %s: %w", id, catalog.ErrNotRecord)
	}
	rec := &catalog.Record{Signed: true} // as a record WriteRecord signed
	return rec, json.Unmarshal(data, rec)
}

func (m *Memory) ReadResources(_ context.Context, id repo.ID) ([]*unstructured.Unstructured, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail["ReadResources"]; err != nil {
		return nil, err
	}
	objs, ok := m.objs[id]
	if !ok {
		return nil, fmt.Errorf("snapshot %s holds no objects", id)
	}
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopy()
	}
	return out, nil
}

func (m *Memory) Records(context.Context) ([]repo.SnapshotInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail["Records"]; err != nil {
		return nil, err
	}
	var out []repo.SnapshotInfo
	for _, s := range m.snaps {
		if s.Tags[catalog.TagKind] == catalog.KindRecord {
			out = append(out, s)
		}
	}
	return out, nil
}

func (m *Memory) Forget(_ context.Context, uid string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail["Forget"]; err != nil {
		return 0, err
	}
	kept, n := m.snaps[:0], 0
	for _, s := range m.snaps {
		if s.Tags[catalog.TagBackupUID] == uid {
			delete(m.recs, s.ID)
			delete(m.objs, s.ID)
			n++
			continue
		}
		kept = append(kept, s)
	}
	m.snaps = kept
	return n, nil
}
