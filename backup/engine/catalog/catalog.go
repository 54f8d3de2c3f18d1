package catalog

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/resources"
)

// Tags on the repository snapshots of a Backup.
const (
	TagKind      = "kind"
	TagBackup    = "backup"
	TagBackupUID = "backup-uid"
	TagNamespace = "namespace"
	TagCluster   = "cluster"

	KindVolume    = "volume"
	KindResources = "resources"
	KindRecord    = "backup"
)

// recordFile is the record; signatureFile holds the repository key's signature of its bytes
// (hex), which a reader checks before trusting what the record names (repo.Sign, purpose
// signaturePurpose).
const (
	recordFile       = "backup.json"
	signatureFile    = "backup.json.sig"
	signaturePurpose = "backup record"
)

// RecordVersion is the version of the record format this Stork writes and reads.
const RecordVersion = 1

// maxRecordBytes and maxObjectBytes bound what is read into memory: a record lists volumes,
// an object is one Kubernetes object (the API server's limit is about 1.5 MiB).
const (
	maxRecordBytes = 16 << 20
	maxObjectBytes = 4 << 20
)

// Record describes one complete Backup.
type Record struct {
	Version int `json:"version"`
	// Name, Namespace and UID of the Backup object in the cluster that made it.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	// Cluster that made it.
	Cluster string `json:"cluster"`
	// SnapshotName the Backup copied.
	SnapshotName string              `json:"snapshotName,omitempty"`
	Phase        storkv1.BackupPhase `json:"phase"`
	StartTime    time.Time           `json:"startTime"`
	// CompletionTime is when the last volume was final.
	CompletionTime time.Time `json:"completionTime"`
	Zones          []string  `json:"zones,omitempty"`
	// Volumes with their repository snapshots (empty ID for a volume whose upload failed).
	Volumes []storkv1.BackupVolume `json:"volumes"`
	// ResourcesSnapshotID holds the Kubernetes objects; empty when the Backup has none.
	ResourcesSnapshotID string `json:"resourcesSnapshotID,omitempty"`
	ResourceCount       int32  `json:"resourceCount,omitempty"`

	// Signed is set by ReadRecord when the record carries a valid signature of the
	// repository's key; records written before signatures existed have none.
	Signed bool `json:"-"`
}

// Tags returns the tags every part of the Backup carries.
func (rec *Record) Tags(kind string) map[string]string {
	return map[string]string{TagKind: kind, TagBackup: rec.Name, TagBackupUID: rec.UID, TagNamespace: rec.Namespace, TagCluster: rec.Cluster}
}

// Find returns the newest snapshot of the given kind for a Backup UID, or nil: how a restarted
// controller finds the part an earlier attempt wrote before it could record the ID.
func Find(ctx context.Context, r *repo.Repository, kind, uid string) (*repo.SnapshotInfo, error) {
	return r.Latest(ctx, func(s repo.SnapshotInfo) bool { return s.Tags[TagKind] == kind && s.Tags[TagBackupUID] == uid })
}

// WriteRecord stores the record; its snapshot makes the Backup visible as complete.
func WriteRecord(ctx context.Context, r *repo.Repository, rec *Record) (repo.ID, error) {
	rec.Version = RecordVersion
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return repo.ID{}, err
	}
	sig, err := r.Sign(signaturePurpose, data)
	if err != nil {
		return repo.ID{}, err
	}
	return writeTree(ctx, r, rec.Tags(KindRecord), func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, recordFile), data, 0o600); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, signatureFile), []byte(hex.EncodeToString(sig)), 0o600)
	})
}

// WriteResources stores the Kubernetes objects of a Backup.
func WriteResources(ctx context.Context, r *repo.Repository, rec *Record, objs []*unstructured.Unstructured) (repo.ID, error) {
	return writeTree(ctx, r, rec.Tags(KindResources), func(dir string) error { return resources.WriteDir(dir, objs) })
}

// writeTree backs up a temporary directory that fill writes.
func writeTree(ctx context.Context, r *repo.Repository, tags map[string]string, fill func(dir string) error) (repo.ID, error) {
	dir, err := os.MkdirTemp("", "stork-catalog-")
	if err != nil {
		return repo.ID{}, err
	}
	defer os.RemoveAll(dir)
	if err := fill(dir); err != nil {
		return repo.ID{}, err
	}
	id, _, err := archive.Backup(ctx, r, dir, archive.BackupOptions{Tags: tags, Workers: 2})
	if err != nil {
		return repo.ID{}, fmt.Errorf("writing the %s of backup %s/%s: %w", tags[TagKind], tags[TagNamespace], tags[TagBackup], err)
	}
	return id, nil
}

// ErrNotRecord is returned for a snapshot that is not a Backup's record.
var ErrNotRecord = errors.New("not a Stork backup record")

// ErrBadSignature is returned for a record whose signature does not verify.
var ErrBadSignature = errors.New("its signature does not verify: it was altered, or written without this repository's key")

// ReadRecord reads a record, checks its signature when it has one (Record.Signed), and checks it
// names its parts.
func ReadRecord(ctx context.Context, r *repo.Repository, id repo.ID) (*Record, error) {
	var data, sig []byte
	err := archive.ReadFiles(ctx, r, id, maxRecordBytes, func(p string, b []byte) error {
		switch p {
		case recordFile:
			data = b
		case signatureFile:
			sig = b
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("snapshot %s has no %s: %w", id, recordFile, ErrNotRecord)
	}
	return decodeRecord(id, data, sig, func(data, sig []byte) (bool, error) { return r.VerifySignature(signaturePurpose, data, sig) })
}

// decodeRecord checks a record's signature (hex, when there is one) with verify and decodes it.
func decodeRecord(id repo.ID, data, sig []byte, verify func(data, sig []byte) (bool, error)) (*Record, error) {
	rec := &Record{}
	if sig != nil {
		raw, err := hex.DecodeString(string(sig))
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", id, ErrBadSignature)
		}
		ok, err := verify(data, raw)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("record %s: %w", id, ErrBadSignature)
		}
		rec.Signed = true
	}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("record %s: %w", id, err)
	}
	switch {
	case rec.Version != RecordVersion:
		return nil, fmt.Errorf("record %s has format version %d; this Stork reads version %d", id, rec.Version, RecordVersion)
	case rec.Name == "" || rec.Namespace == "" || rec.UID == "":
		return nil, fmt.Errorf("record %s lacks the Backup's name, namespace or UID", id)
	}
	return rec, nil
}

// ReadResources reads the Kubernetes objects of a Backup.
func ReadResources(ctx context.Context, r *repo.Repository, id repo.ID) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	err := archive.ReadFiles(ctx, r, id, maxObjectBytes, func(p string, data []byte) error {
		o, err := resources.Parse(p, data)
		if err != nil {
			return fmt.Errorf("objects snapshot %s: %w", id, err)
		}
		objs = append(objs, o)
		return nil
	})
	return objs, err
}

// Records lists the record snapshots of the repository, oldest first.
func Records(ctx context.Context, r *repo.Repository) ([]repo.SnapshotInfo, error) {
	all, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	var out []repo.SnapshotInfo
	for _, s := range all {
		if s.Tags[TagKind] == KindRecord {
			out = append(out, s)
		}
	}
	return out, nil
}

// Forget removes every snapshot of the Backup with this UID from the repository, the record
// first, so that a delete interrupted halfway never leaves a record whose parts are gone. It
// returns how many it forgot. The space is freed by the next prune.
func Forget(ctx context.Context, r *repo.Repository, uid string) (int, error) {
	if uid == "" {
		return 0, errors.New("forgetting a backup: no backup UID given")
	}
	all, err := r.Snapshots(ctx)
	if err != nil {
		return 0, err
	}
	var records, parts []repo.ID
	for _, s := range all {
		switch {
		case s.Tags[TagBackupUID] != uid:
		case s.Tags[TagKind] == KindRecord:
			records = append(records, s.ID)
		default:
			parts = append(parts, s.ID)
		}
	}
	n := 0
	for _, id := range append(records, parts...) {
		if err := r.Forget(ctx, id); err != nil {
			return n, fmt.Errorf("forgetting snapshot %s of backup %s: %w", id, uid, err)
		}
		n++
	}
	return n, nil
}
