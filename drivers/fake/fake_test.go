package fake_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/fake"
)

func node(name, zone string, h storkv1.StorageHealth) drivers.StorageNode {
	return drivers.StorageNode{Node: name, Topology: storkv1.Topology{Zone: zone}, Health: h}
}

func TestSnapshotTakesStepsAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	d := fake.New(3)
	d.SetReplicas("pv1", "n1")
	req := drivers.SnapshotRequest{ID: "uid-1", Volumes: []drivers.Volume{{PV: fake.PV("pv1", 1024)}, {PV: fake.PV("pv2", 2048)}}}
	for call := 1; call <= 4; call++ {
		st, err := d.Snapshot(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		wantDone := call >= 3
		for i, s := range st {
			if s.Final() != wantDone {
				t.Fatalf("call %d volume %d: phase %s, want final=%v", call, i, s.Phase, wantDone)
			}
		}
		if wantDone && (st[0].SnapshotID != "uid-1/pv1" || st[0].Node != "n1" || st[1].SizeBytes != 2048 || st[1].Progress.BytesDone != 2048) {
			t.Fatalf("call %d: unexpected result %+v", call, st)
		}
	}
	if got := d.Snapshots(); !slices.Equal(got, []string{"uid-1/pv1", "uid-1/pv2"}) {
		t.Errorf("snapshots %v: a repeated request must not make more", got)
	}
}

func TestSnapshotErrors(t *testing.T) {
	ctx := context.Background()
	d := fake.New(1)
	d.FailVolume("bad", "disk on fire")
	st, err := d.Snapshot(ctx, drivers.SnapshotRequest{ID: "u", Volumes: []drivers.Volume{{PV: fake.PV("bad", 1)}}})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Phase != storkv1.VolumeFailed || st[0].Message != "disk on fire" {
		t.Errorf("status %+v, want Failed with the driver's message", st[0])
	}
	other := &corev1.PersistentVolume{}
	other.Name = "hostpath"
	if _, err := d.Snapshot(ctx, drivers.SnapshotRequest{ID: "u", Volumes: []drivers.Volume{{PV: other}}}); !errors.Is(err, drivers.ErrNotOwned) {
		t.Errorf("snapshot of a foreign volume: %v, want ErrNotOwned", err)
	}
}

func TestRestoreExportImport(t *testing.T) {
	ctx := context.Background()
	d := fake.New(1)
	d.SetNode(node("a1", "a", storkv1.StorageHealthy))
	d.SetNode(node("b1", "b", storkv1.StorageDown))
	d.SetNode(node("b2", "b", storkv1.StorageHealthy))
	d.SetReplicas("pv1", "a1")
	if _, err := d.Snapshot(ctx, drivers.SnapshotRequest{ID: "s", Volumes: []drivers.Volume{{PV: fake.PV("pv1", 10)}}}); err != nil {
		t.Fatal(err)
	}
	ref := drivers.SnapshotRef{SnapshotID: "s/pv1"}

	r, err := d.Restore(ctx, drivers.RestoreRequest{ID: "r1", Source: ref, TargetNamespace: "ns", TargetClaim: "c"})
	if err != nil || r.Phase != storkv1.VolumeSucceeded || r.Node != "a1" {
		t.Fatalf("restore: %+v, %v", r, err)
	}
	loc, err := d.Locate(ctx, drivers.Volume{PV: fake.PV(r.VolumeName, 10)})
	if err != nil || len(loc.Replicas) != 1 || loc.Replicas[0].Node != "a1" || !loc.Replicas[0].Healthy {
		t.Fatalf("restored volume located at %+v, %v", loc, err)
	}

	e, err := d.Export(ctx, drivers.ExportRequest{ID: "e1", Source: ref})
	if err != nil || e.Phase != storkv1.VolumeSucceeded || e.RepositorySnapshotID == "" {
		t.Fatalf("export: %+v, %v", e, err)
	}
	im, err := d.Import(ctx, drivers.ImportRequest{ID: "i1", RepositorySnapshotID: e.RepositorySnapshotID, Topology: storkv1.Topology{Zone: "b"}, SizeBytes: 10})
	if err != nil || im.Phase != storkv1.VolumeSucceeded || im.Node != "b2" {
		t.Fatalf("import into zone b: %+v, %v (want the healthy node b2)", im, err)
	}
	im, err = d.Import(ctx, drivers.ImportRequest{ID: "i2", Topology: storkv1.Topology{Zone: "z"}})
	if err != nil || im.Phase != storkv1.VolumeFailed || im.Reason != "NoStorageNode" {
		t.Fatalf("import into a zone without nodes: %+v, %v", im, err)
	}

	if done, err := d.DeleteSnapshot(ctx, ref); err != nil || !done {
		t.Fatalf("delete: %v %v", done, err)
	}
	if r, _ := d.Restore(ctx, drivers.RestoreRequest{ID: "r2", Source: ref}); r.Reason != "SnapshotNotFound" {
		t.Errorf("restore of a deleted snapshot: %+v", r)
	}
}

func TestOwnership(t *testing.T) {
	d := fake.New(1)
	if !d.Owns(drivers.Volume{PV: fake.PV("x", 1)}) {
		t.Error("does not own its own PV")
	}
	if d.Owns(drivers.Volume{}) {
		t.Error("owns an empty volume")
	}
	if _, err := d.Locate(context.Background(), drivers.Volume{}); err == nil {
		t.Error("locating an unbound volume succeeded")
	}
}
