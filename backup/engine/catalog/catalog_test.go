package catalog

import (
	"context"
	"errors"
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
	if err != nil || got.Version != RecordVersion || got.UID != "u1" || got.Volumes[0].RepositorySnapshotID != "abc" || got.ResourcesSnapshotID != resID.String() {
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
