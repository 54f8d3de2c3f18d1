package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// TestDeleteVolumeTask: a DeleteVolume task waits while a task that makes its volume still
// exists (the controller deletes those first; the agent stops one that runs), then removes the
// volume and the restored marks naming it; it never removes a volume no restore made.
func TestDeleteVolumeTask(t *testing.T) {
	ctx := context.Background()
	root := Root(t.TempDir())
	const vol = restoredPrefix + "abc"
	for _, dir := range []string{root.volume(vol), root.volume("pv-app-data"), root.restoredMark("")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root.volume(vol), "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.restoredMark("dl-uid"), []byte(vol+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	onNode := func(tk *storkv1.VolumeTask) *storkv1.VolumeTask {
		tk.Labels = map[string]string{storkv1.LabelTaskNode: "n1", storkv1.LabelTaskDriver: DriverName}
		tk.Spec.NodeName, tk.Spec.Driver = "n1", DriverName
		return tk
	}
	dl := onNode(task(storkv1.TaskDownload, "dl-uid", storkv1.VolumeTaskSpec{VolumeName: vol}))
	del := onNode(task(storkv1.TaskDeleteVolume, "del-uid", storkv1.VolumeTaskSpec{VolumeName: vol}))
	notOurs := onNode(task(storkv1.TaskDeleteVolume, "del-2", storkv1.VolumeTaskSpec{VolumeName: "pv-app-data"}))
	dl.Status.Phase = storkv1.TaskSucceeded
	c := fake.NewClientBuilder().WithScheme(taskScheme()).WithObjects(dl, del, notOurs).WithStatusSubresource(dl, del, notOurs).Build()
	tk := &Tasks{Client: c, Node: "n1", Root: root, AgentID: "a1", MaxAttempts: 3}
	run := func(tsk *storkv1.VolumeTask) (ctrl.Result, *storkv1.VolumeTask) {
		t.Helper()
		res, err := tk.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(tsk)})
		if err != nil {
			t.Fatal(err)
		}
		got := &storkv1.VolumeTask{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(tsk), got); err != nil {
			t.Fatal(err)
		}
		return res, got
	}

	if res, got := run(del); res.RequeueAfter == 0 || got.Status.Phase != "" {
		t.Fatalf("with the download task still there: %+v, status %+v; want it waiting", res, got.Status)
	}
	if _, err := os.Stat(root.volume(vol)); err != nil {
		t.Fatalf("the volume was removed while its download task exists: %v", err)
	}
	if err := c.Delete(ctx, dl); err != nil {
		t.Fatal(err)
	}
	if _, got := run(del); got.Status.Phase != storkv1.TaskSucceeded {
		t.Fatalf("status %+v, want Succeeded", got.Status)
	}
	for _, p := range []string{root.volume(vol), root.restoredMark("dl-uid")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it removed", p, err)
		}
	}
	if _, got := run(notOurs); got.Status.Phase != storkv1.TaskFailed || got.Status.Reason != "NotRestored" {
		t.Errorf("deleting a volume no restore made: %+v, want Failed NotRestored", got.Status)
	}
	if _, err := os.Stat(root.volume("pv-app-data")); err != nil {
		t.Errorf("a volume no restore made: %v, want it kept", err)
	}
}
