package csiplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"stork.dev/stork/drivers/local/fscopy"
)

// The store keeps every volume and snapshot as a data directory with a JSON metadata file next
// to it:
//
//	ROOT/volumes/ID/       the volume's data
//	ROOT/volumes/ID.json   volumeMeta
//	ROOT/snapshots/ID/     a copy of the source volume's data
//	ROOT/snapshots/ID.json snapshotMeta
//	ROOT/tmp/              data being copied, renamed into place when complete
//
// An object exists when its metadata file does. Data is staged in tmp and renamed into place
// before the metadata is written (by rename too), and deletion removes the metadata first, so a
// plugin killed at any point leaves either a complete object or an orphaned directory that the
// next creation of the same name replaces. IDs are derived from the CSI names, which makes
// creation idempotent across restarts without an index.
type store struct {
	root string
	// mu serializes every operation: the sidecars call concurrently, and test volumes are
	// small enough for copying under the lock.
	mu sync.Mutex
}

type volumeMeta struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	CapacityBytes int64             `json:"capacityBytes"`
	SourceVolume  string            `json:"sourceVolume,omitempty"`
	SourceSnap    string            `json:"sourceSnapshot,omitempty"`
	Topology      map[string]string `json:"topology,omitempty"`
	Parameters    map[string]string `json:"parameters,omitempty"`
	CreatedAt     time.Time         `json:"createdAt"`
}

type snapshotMeta struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	SourceVolume string    `json:"sourceVolume"`
	SizeBytes    int64     `json:"sizeBytes"`
	CreatedAt    time.Time `json:"createdAt"`
	ReadyToUse   bool      `json:"readyToUse"`
}

const (
	volumesDir   = "volumes"
	snapshotsDir = "snapshots"
	tmpDir       = "tmp"
)

func openStore(root string) (*store, error) {
	for _, d := range []string{volumesDir, snapshotsDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("csi plugin: making its state directory: %w", err)
		}
	}
	// Leftovers of copies interrupted by a crash.
	if entries, err := os.ReadDir(filepath.Join(root, tmpDir)); err == nil {
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(root, tmpDir, e.Name()))
		}
	}
	return &store{root: root}, nil
}

// idFor derives an object's ID from its CSI name: the same name always gives the same ID,
// and the ID is safe as a file name whatever the name is.
func idFor(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:10])
}

// validID tells whether id can name an object of the store: IDs from callers become path
// components, so anything that is not an ID this store could have made is rejected.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (s *store) volumeDir(id string) string   { return filepath.Join(s.root, volumesDir, id) }
func (s *store) snapshotDir(id string) string { return filepath.Join(s.root, snapshotsDir, id) }

// readMeta reads the metadata file of an object into v; found is false when the object does
// not exist (or id is not valid).
func readMeta(dir, id string, v any) (found bool, err error) {
	if !validID(id) {
		return false, nil
	}
	data, err := os.ReadFile(dir + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading metadata of %s: %w", id, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("parsing metadata of %s: %w", id, err)
	}
	return true, nil
}

// writeMeta writes the metadata file of the object whose data is dir atomically.
func (s *store) writeMeta(dir string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding metadata: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "meta-*")
	if err != nil {
		return fmt.Errorf("writing metadata of %s: %w", filepath.Base(dir), err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing metadata of %s: %w", filepath.Base(dir), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing metadata of %s: %w", filepath.Base(dir), err)
	}
	if err := os.Rename(f.Name(), dir+".json"); err != nil {
		return fmt.Errorf("writing metadata of %s: %w", filepath.Base(dir), err)
	}
	return nil
}

// placeData makes dst a copy of src (an empty directory when src is empty) by copying into a
// temporary directory and renaming it into place over any orphan from an interrupted run.
func (s *store) placeData(dst, src string) error {
	tmp, err := os.MkdirTemp(filepath.Join(s.root, tmpDir), "data-*")
	if err != nil {
		return fmt.Errorf("staging data of %s: %w", filepath.Base(dst), err)
	}
	defer os.RemoveAll(tmp)
	if src != "" {
		// A storage system's snapshot and clone keep every file's metadata (modes, owners,
		// times, holes), as Stork's local driver does: the same copy.
		if err := os.Remove(tmp); err != nil {
			return err
		}
		if _, err := fscopy.Copy(context.Background(), src, tmp, fscopy.Options{}); err != nil {
			return fmt.Errorf("copying %s into %s: %w", filepath.Base(src), filepath.Base(dst), err)
		}
	} else if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("removing an orphaned %s: %w", filepath.Base(dst), err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("placing data of %s: %w", filepath.Base(dst), err)
	}
	return nil
}

// remove deletes an object: metadata first, so that it stops existing before its data goes.
func remove(dir string) error {
	if err := os.Remove(dir + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing metadata of %s: %w", filepath.Base(dir), err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing data of %s: %w", filepath.Base(dir), err)
	}
	return nil
}

// dataSize is the total size of the regular files under dir.
func dataSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring %s: %w", filepath.Base(dir), err)
	}
	return total, nil
}

// snapshots lists every snapshot, ordered by ID so that paging through them is stable.
func (s *store) snapshots() ([]snapshotMeta, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, snapshotsDir))
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	var out []snapshotMeta
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		var m snapshotMeta
		found, err := readMeta(s.snapshotDir(id), id, &m)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// volume reads a volume's metadata as a gRPC answer would want it: NotFound when there is no
// such volume (what names it), Internal when it cannot be read. The caller holds the lock.
func (s *store) volume(id, what string) (volumeMeta, error) {
	var v volumeMeta
	found, err := readMeta(s.volumeDir(id), id, &v)
	if err != nil {
		return v, status.Error(codes.Internal, err.Error())
	}
	if !found {
		return v, status.Errorf(codes.NotFound, "%s %q not found", what, id)
	}
	return v, nil
}
