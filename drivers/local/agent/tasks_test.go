package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/transfer"
)

func TestWithin(t *testing.T) {
	root := Root(t.TempDir())
	outside := t.TempDir()
	for _, d := range []string{"vols/a", ".stork/snapshots/s"} {
		if err := os.MkdirAll(filepath.Join(string(root), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(string(root), "vols", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(root), "vols", "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, err string
	}{
		{filepath.Join(string(root), "vols/a"), ""},
		{filepath.Join(string(root), "vols/escape"), "outside the storage root"},
		{filepath.Join(string(root), "vols/a/../../.."), "outside the storage root"},
		{outside, "outside the storage root"},
		{string(root), "outside the storage root"},
		{filepath.Join(string(root), ".stork/snapshots/s"), "the agent's own directory"},
		{filepath.Join(string(root), "vols/file"), "not a directory"},
		{"vols/a", "not absolute"},
	} {
		_, err := root.within(tc.path)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("within(%s) = %v, want %q", tc.path, err, tc.err)
		}
	}
}

func task(typ storkv1.VolumeTaskType, uid string, spec storkv1.VolumeTaskSpec) *storkv1.VolumeTask {
	spec.Type = typ
	return &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "t-" + uid, UID: types.UID(uid)}, Spec: spec}
}

// The work of each task type on a real directory: snapshot, restore, delete, and what happens
// when a step is repeated after an interruption.
func TestTaskWork(t *testing.T) {
	ctx := context.Background()
	root := Root(t.TempDir())
	vol := filepath.Join(string(root), "vols", "pv-1")
	if err := os.MkdirAll(filepath.Join(vol, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "sub", "f"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tk := &Tasks{Node: "n1", Root: root, AgentID: "a1"}
	var last [2]int64
	progress := func(p storkv1.Progress) { last = [2]int64{p.BytesDone, p.BytesTotal} }

	// A leftover of an interrupted attempt is removed first.
	if err := os.MkdirAll(filepath.Join(root.work("snap-uid-0001"), "junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	snapTask := task(storkv1.TaskSnapshot, "snap-uid-0001", storkv1.VolumeTaskSpec{VolumeName: "pv-1", SourcePath: vol})
	res, err := tk.do(ctx, snapTask, progress)
	if err != nil {
		t.Fatal(err)
	}
	if res.snapshotID != "pv-1-snap-uid-0001" || res.size != 5 || last != [2]int64{5, 5} {
		t.Fatalf("snapshot result %+v, progress %v", res, last)
	}
	if data, err := os.ReadFile(filepath.Join(root.snapshot(res.snapshotID), "sub", "f")); err != nil || string(data) != "hello" {
		t.Fatalf("snapshot content %q, %v", data, err)
	}
	if _, err := os.Stat(root.work("snap-uid-0001")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work directory left behind: %v", err)
	}
	// Run again (the agent died after publishing, before reporting): same snapshot, no copy.
	if again, err := tk.do(ctx, snapTask, progress); err != nil || again != res {
		t.Errorf("repeated snapshot: %+v, %v; want %+v", again, err, res)
	}

	restoreTask := task(storkv1.TaskRestore, "rst-uid", storkv1.VolumeTaskSpec{VolumeName: "pv-new", SnapshotID: res.snapshotID})
	rr, err := tk.do(ctx, restoreTask, progress)
	if err != nil {
		t.Fatal(err)
	}
	if rr.path != root.volume("pv-new") {
		t.Fatalf("restored into %s", rr.path)
	}
	if data, err := os.ReadFile(filepath.Join(rr.path, "sub", "f")); err != nil || string(data) != "hello" {
		t.Fatalf("restored content %q, %v", data, err)
	}
	if again, err := tk.do(ctx, restoreTask, progress); err != nil || again.path != rr.path {
		t.Errorf("repeated restore: %+v, %v", again, err)
	}
	// Another task must not take over a volume directory that exists.
	other := task(storkv1.TaskRestore, "other-uid", storkv1.VolumeTaskSpec{VolumeName: "pv-new", SnapshotID: res.snapshotID})
	if _, err := tk.do(ctx, other, progress); !isReason(err, "VolumeExists") {
		t.Errorf("restore over an existing volume: %v", err)
	}

	for _, tc := range []struct {
		name   string
		task   *storkv1.VolumeTask
		reason string
	}{
		{"snapshot outside the root", task(storkv1.TaskSnapshot, "u2", storkv1.VolumeTaskSpec{VolumeName: "x", SourcePath: t.TempDir()}), "InvalidVolumePath"},
		{"restore of a missing snapshot", task(storkv1.TaskRestore, "u3", storkv1.VolumeTaskSpec{VolumeName: "y", SnapshotID: "nope"}), "SnapshotNotFound"},
		{"snapshot ID with a slash", task(storkv1.TaskDeleteSnapshot, "u4", storkv1.VolumeTaskSpec{SnapshotID: "../vols"}), "InvalidTask"},
		{"volume name ..", task(storkv1.TaskRestore, "u5", storkv1.VolumeTaskSpec{VolumeName: "..", SnapshotID: res.snapshotID}), "InvalidTask"},
		{"a download without a backup", task(storkv1.TaskDownload, "u6", storkv1.VolumeTaskSpec{VolumeName: "z", AccessSecretName: "s"}), "InvalidTask"},
		{"an upload without access", task(storkv1.TaskUpload, "u7", storkv1.VolumeTaskSpec{SnapshotID: res.snapshotID}), "InvalidTask"},
	} {
		if _, err := tk.do(ctx, tc.task, progress); !isReason(err, tc.reason) {
			t.Errorf("%s: %v, want reason %s", tc.name, err, tc.reason)
		}
	}

	del := task(storkv1.TaskDeleteSnapshot, "del-uid", storkv1.VolumeTaskSpec{SnapshotID: res.snapshotID})
	for range 2 { // deleting what is gone is done
		if _, err := tk.do(ctx, del, progress); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(root.snapshot(res.snapshotID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snapshot still there: %v", err)
	}
}

func isReason(err error, reason string) bool {
	var te *transfer.Error
	return errors.As(err, &te) && te.Reason == reason
}
