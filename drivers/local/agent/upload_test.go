package agent

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/scratchfs"
)

// On XFS the agent's snapshots are reflink clones, and the backup of the second one reads only
// the blocks the app wrote in between: from a 32 MiB file with 8 KiB rewritten, at most the
// chunks around them, the rest reported as skipped.
func TestUploadReadsOnlyChangedExtents(t *testing.T) {
	ctx := context.Background()
	root := Root(scratchfs.Mount(t, "xfs"))
	vol := filepath.Join(string(root), "vols", "pv-1")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 32 << 20
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(vol, "db"), data, 0o600); err != nil {
		t.Fatal(err)
	}

	_, _, secret := newRepository(t, "access")
	c := fake.NewClientBuilder().WithScheme(taskScheme()).WithObjects(secret).Build()
	tk := &Tasks{Client: c, Node: "n1", Root: root, AgentID: "a1", Namespace: storkNamespace}

	// snapshotAndUpload runs a Snapshot task and an Upload task of its snapshot, as a scheduled
	// backup does, and returns the upload's last progress.
	snapshotAndUpload := func(uid string) storkv1.Progress {
		t.Helper()
		snap, err := tk.do(ctx, task(storkv1.TaskSnapshot, "snap-"+uid, storkv1.VolumeTaskSpec{VolumeName: "pv-1", SourcePath: vol}),
			func(storkv1.Progress) {})
		if err != nil {
			t.Fatal(err)
		}
		var last storkv1.Progress
		up := task(storkv1.TaskUpload, "up-"+uid, storkv1.VolumeTaskSpec{SnapshotID: snap.snapshotID, AccessSecretName: "access",
			BackupLocation: "loc", Tags: map[string]string{"cluster": "c", "namespace": "app", "pvc": "data"}})
		if _, err := tk.do(ctx, up, func(p storkv1.Progress) { last = p }); err != nil {
			t.Fatal(err)
		}
		return last
	}
	if p := snapshotAndUpload("1"); p.BytesSkipped != 0 || p.BytesDone != size {
		t.Fatalf("first backup: progress %+v", p)
	}
	f, err := os.OpenFile(filepath.Join(vol, "db"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 8<<10), 10<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	p := snapshotAndUpload("2")
	// Two chunks of at most 4 MiB (the default chunker's maximum) hold the 8 KiB.
	if read := p.BytesDone - p.BytesSkipped; p.BytesDone != size || read > 8<<20 {
		t.Errorf("second backup: progress %+v: read %d bytes of %d", p, read, size)
	}
	// Both manifests are kept on the node for the next task, which finds its parent there.
	if m, _ := filepath.Glob(filepath.Join(root.repoCache(), "*", "snapshots", "*")); len(m) != 2 {
		t.Errorf("%d manifests in the agent's cache %s, want 2", len(m), root.repoCache())
	}
}
