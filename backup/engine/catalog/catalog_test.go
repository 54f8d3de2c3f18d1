package catalog

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/repo/repotest"
)

// TestRecordsAndParts writes a Backup's parts, finds them by tags, reads them back, and forgets
// them: the record first, and only this Backup's.
func TestRecordsAndParts(t *testing.T) {
	ctx := context.Background()
	r, _ := repotest.New(t, "a long passphrase")
	rec := &Record{Name: "nightly", Namespace: "shop", UID: "u1", Cluster: "site-a", Phase: storkv1.BackupCompleted,
		Volumes: []storkv1.BackupVolume{{ClaimName: "data", RepositorySnapshotID: "abc"}}}
	cm := &unstructured.Unstructured{}
	cm.SetAPIVersion("v1")
	cm.SetKind("ConfigMap")
	cm.SetNamespace("shop")
	cm.SetName("cfg")
	resID, err := WriteResources(ctx, r, rec, []*unstructured.Unstructured{cm})
	if err != nil {
		t.Fatal(err)
	}
	rec.ResourcesSnapshotID = resID.String()
	recID, err := WriteRecord(ctx, r, rec)
	if err != nil {
		t.Fatal(err)
	}
	other := &Record{Name: "other", Namespace: "shop", UID: "u2", Cluster: "site-a"}
	if _, err := WriteRecord(ctx, r, other); err != nil {
		t.Fatal(err)
	}

	if s, err := Find(ctx, r, KindResources, "u1"); err != nil || s == nil || s.ID != resID || s.Tags[TagBackup] != "nightly" || s.Tags[TagCluster] != "site-a" {
		t.Fatalf("Find resources: %+v, %v", s, err)
	}
	if s, err := Find(ctx, r, KindRecord, "u3"); err != nil || s != nil {
		t.Fatalf("Find of an unknown UID: %+v, %v", s, err)
	}
	got, err := ReadRecord(ctx, r, recID)
	if err != nil || !got.Signed || got.Version != RecordVersion || got.UID != "u1" || got.Volumes[0].RepositorySnapshotID != "abc" || got.ResourcesSnapshotID != resID.String() {
		t.Fatalf("ReadRecord: %+v, %v", got, err)
	}
	if _, err := ReadRecord(ctx, r, resID); !errors.Is(err, ErrNotRecord) {
		t.Errorf("ReadRecord of the resources snapshot: %v, want ErrNotRecord", err)
	}
	objs, err := ReadResources(ctx, r, resID)
	if err != nil || len(objs) != 1 || objs[0].GetName() != "cfg" || objs[0].GetKind() != "ConfigMap" {
		t.Fatalf("ReadResources: %v, %v", objs, err)
	}
	if recs, err := Records(ctx, r); err != nil || len(recs) != 2 {
		t.Fatalf("Records: %v, %v", recs, err)
	}

	n, err := Forget(ctx, r, "u1")
	if err != nil || n != 2 {
		t.Fatalf("Forget: %d, %v", n, err)
	}
	recs, err := Records(ctx, r)
	if err != nil || len(recs) != 1 || recs[0].Tags[TagBackupUID] != "u2" {
		t.Fatalf("records after Forget: %v, %v", recs, err)
	}
	if s, err := Find(ctx, r, KindResources, "u1"); err != nil || s != nil {
		t.Errorf("resources after Forget: %+v, %v", s, err)
	}
}

// TestRecordSignature: a record whose bytes or signature were changed is refused; one without a
// signature (written before signatures existed) is read as unsigned; a signature is bound to
// the repository's key, so another repository's record signature does not verify here.
func TestRecordSignature(t *testing.T) {
	ctx := context.Background()
	r, _ := repotest.New(t, "a long passphrase")
	other, _ := repotest.New(t, "another long passphrase")
	rec := &Record{Version: RecordVersion, Name: "nightly", Namespace: "shop", UID: "u1", Cluster: "site-a", Phase: storkv1.BackupCompleted,
		Volumes: []storkv1.BackupVolume{{ClaimName: "data", RepositorySnapshotID: "abc"}}}
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := r.Sign(signaturePurpose, data)
	if err != nil {
		t.Fatal(err)
	}
	otherSig, err := other.Sign(signaturePurpose, data)
	if err != nil {
		t.Fatal(err)
	}
	altered := []byte(string(data[:len(data)-2]) + `,"cluster":"site-x"}`)
	hexOf := hex.EncodeToString
	for _, tc := range []struct {
		name       string
		record     []byte
		signature  string // "" writes no signature file
		wantSigned bool
		wantErr    error
	}{
		{name: "signed", record: data, signature: hexOf(sig), wantSigned: true},
		{name: "unsigned (older Stork)", record: data},
		{name: "altered record", record: altered, signature: hexOf(sig), wantErr: ErrBadSignature},
		{name: "another repository's key", record: data, signature: hexOf(otherSig), wantErr: ErrBadSignature},
		{name: "garbage signature", record: data, signature: "not hex", wantErr: ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := writeTree(ctx, r, rec.Tags(KindRecord), func(dir string) error {
				if err := os.WriteFile(filepath.Join(dir, recordFile), tc.record, 0o600); err != nil {
					return err
				}
				if tc.signature == "" {
					return nil
				}
				return os.WriteFile(filepath.Join(dir, signatureFile), []byte(tc.signature), 0o600)
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadRecord(ctx, r, id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ReadRecord: %+v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Signed != tc.wantSigned || got.UID != "u1" {
				t.Fatalf("ReadRecord: %+v, %v; want signed %v", got, err, tc.wantSigned)
			}
		})
	}
}
