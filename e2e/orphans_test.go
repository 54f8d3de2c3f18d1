package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/controllers"
	"stork.dev/stork/drivers/local/agent"
	"stork.dev/stork/internal/crashpoint"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/restore"
)

// TestAbandonedCapturesAreRemoved: a Snapshot that gives a volume up leaves nothing of it on the
// node. Two ways it happens, each with the capture task deleted (Event CaptureAbandoned on the
// Snapshot) and, where the agent had captured, the node snapshot removed by its sweeper (Event
// OrphansRemoved on the StorageNode):
//   - the volume's PersistentVolume vanished after the capture ran but before the Snapshot
//     recorded it (the controller is killed right after asking for the capture, and the volume
//     deleted while it is down);
//   - the capture did not start in time (the agent down) and the volume failed NotStarted: the
//     agent, back, never runs it.
func TestAbandonedCapturesAreRemoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	c, node, agentProc := oneNodeCluster(ctx, t, env, "abandon", "--sweep-interval=1s", "--sweep-grace=2s")
	snapshots := filepath.Join(c.NodeRoot(node), ".stork", "snapshots")
	// The first controller is not ours to restart: stop it, and run our own.
	stork := restartStork(ctx, t, c, nil, nil)

	t.Run("the volume vanished before its capture was recorded", func(t *testing.T) {
		writeTree(t, makeLocalVolume(t, c, "app", "gone", node, nil), 21, 1<<20)
		stork = restartStork(ctx, t, c, stork, []string{crashpoint.EnvVar + "=" + controllers.CrashCaptureRequested})
		snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s-gone"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "gone"}}}
		mustCreate(t, c, snap)
		select {
		case <-stork.Exited():
		case <-time.After(2 * time.Minute):
			t.Fatal("the controller did not die at " + controllers.CrashCaptureRequested)
		}
		// While it is down, the agent captures, and the volume goes.
		task := waitTaskPhase(ctx, t, c, storkv1.TaskSnapshot, storkv1.TaskSucceeded)
		dir := filepath.Join(snapshots, task.Status.SnapshotID)
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("the capture's node snapshot: %v", err)
		}
		pvc := &corev1.PersistentVolumeClaim{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "gone"}, pvc); err != nil {
			t.Fatal(err)
		}
		for _, o := range []client.Object{pvc, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvc.Spec.VolumeName}}} {
			if err := c.Client.Delete(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		err := c.WaitFor(ctx, time.Minute, "PersistentVolume "+pvc.Spec.VolumeName+" to be gone", func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &corev1.PersistentVolume{})
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			t.Fatal(err)
		}
		stork = restartStork(ctx, t, c, stork, nil)
		waitSnapshot(t, c, snap, storkv1.SnapshotFailed)
		if v := snap.Status.Volumes[0]; v.Reason != "VolumeGone" {
			t.Errorf("volume status %+v, want Failed VolumeGone", v)
		}
		waitGoneAndSwept(ctx, t, c, snap, task, dir)
	})

	t.Run("a capture that did not start in time never runs", func(t *testing.T) {
		writeTree(t, makeLocalVolume(t, c, "app", "late", node, nil), 22, 1<<20)
		if err := agentProc.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		stork = restartStork(ctx, t, c, stork, nil, "--snapshot-pending-timeout=3s")
		snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s-late"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "late"}}}
		mustCreate(t, c, snap)
		task := waitTaskPhase(ctx, t, c, storkv1.TaskSnapshot, "")
		waitSnapshot(t, c, snap, storkv1.SnapshotFailed)
		if v := snap.Status.Volumes[0]; v.Reason != "NotStarted" {
			t.Errorf("volume status %+v, want Failed NotStarted", v)
		}
		waitEvent(ctx, t, c, "app", snap.Name, controllers.EventCaptureAbandoned)
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(&task), &storkv1.VolumeTask{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the capture task of the NotStarted volume: %v, want it deleted", err)
		}
		var err error
		if agentProc, err = c.StartAgent(ctx, node, "--sweep-interval=1s", "--sweep-grace=2s"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // the agent is up and has swept; it must not capture
		entries, _ := os.ReadDir(snapshots)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), string(task.UID)) {
				t.Errorf("node snapshot %s made for the abandoned capture", e.Name())
			}
		}
	})
}

// restartStork stops the controller (if running) and starts it again with env and args.
func restartStork(ctx context.Context, t *testing.T, c *harness.Cluster, p *harness.Process, env []string, args ...string) *harness.Process {
	t.Helper()
	if p != nil {
		_ = p.Stop(10 * time.Second)
	} else {
		// oneNodeCluster's controller: the only stork process of the cluster.
		for _, proc := range c.Components() {
			if proc.Name == c.Name+"-stork" {
				_ = proc.Stop(10 * time.Second)
			}
		}
	}
	p, err := c.StartStorkEnv(ctx, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitTaskPhase waits for a task of type typ in namespace app in phase (any phase when "").
func waitTaskPhase(ctx context.Context, t *testing.T, c *harness.Cluster, typ storkv1.VolumeTaskType, phase storkv1.VolumeTaskPhase) storkv1.VolumeTask {
	t.Helper()
	var task storkv1.VolumeTask
	err := c.WaitFor(ctx, 2*time.Minute, "a "+string(typ)+" task "+string(phase), func(ctx context.Context) (bool, error) {
		var list storkv1.VolumeTaskList
		if err := c.Client.List(ctx, &list, client.InNamespace("app")); err != nil {
			return false, err
		}
		for _, tk := range list.Items {
			if tk.Spec.Type == typ && (phase == "" || tk.Status.Phase == phase) {
				task = tk
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// waitGoneAndSwept checks that snap's controller deleted the capture task (Event
// CaptureAbandoned) and that the node's agent removed the node snapshot at dir (Event
// OrphansRemoved).
func waitGoneAndSwept(ctx context.Context, t *testing.T, c *harness.Cluster, snap *storkv1.Snapshot, task storkv1.VolumeTask, dir string) {
	t.Helper()
	waitEvent(ctx, t, c, snap.Namespace, snap.Name, controllers.EventCaptureAbandoned)
	err := c.WaitFor(ctx, time.Minute, "the abandoned capture's task and node snapshot to be gone", func(ctx context.Context) (bool, error) {
		errT := c.Client.Get(ctx, client.ObjectKeyFromObject(&task), &storkv1.VolumeTask{})
		_, errD := os.Stat(dir)
		return apierrors.IsNotFound(errT) && os.IsNotExist(errD), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, c, "default", agent.StorageNodeName(agent.DriverName, task.Labels[storkv1.LabelTaskNode]), agent.EventOrphansRemoved)
}

// TestCancelledRestoreLeavesNoVolume: a Restore deleted after its volume was downloaded but
// before the claim was bound to it (the controller killed right after asking for the download,
// the Restore deleted while it is down) removes that volume: its finalizer holds it until the
// node's agent has deleted the directory (a DeleteVolume task), with an Event VolumeDiscarded.
func TestCancelledRestoreLeavesNoVolume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio-discard")
	if err != nil {
		t.Fatal(err)
	}
	c, node, _ := oneNodeCluster(ctx, t, env, "discard")
	stork := restartStork(ctx, t, c, nil, nil)
	writeTree(t, makeLocalVolume(t, c, "app", "data", node, nil), 23, 2<<20)
	location(t, c, m, "app", "loc")
	mustCreate(t, c, &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s1"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}, BackupLocation: "loc"}})
	waitBackup(t, c, &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s1"}})

	stork = restartStork(ctx, t, c, stork, []string{crashpoint.EnvVar + "=" + restore.CrashImportRequested})
	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "copy"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "s1"}, VolumesOnly: true,
			ClaimNameMapping: map[string]string{"data": "data-copy"}}}
	mustCreate(t, c, rs)
	select {
	case <-stork.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatal("the controller did not die at " + restore.CrashImportRequested)
	}
	// While it is down, the agent downloads and publishes the volume; then the Restore is deleted.
	task := waitTaskPhase(ctx, t, c, storkv1.TaskDownload, storkv1.TaskSucceeded)
	dir := filepath.Join(c.NodeRoot(node), "volumes", task.Spec.VolumeName)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the downloaded volume: %v", err)
	}
	if err := c.Client.Delete(ctx, rs); err != nil {
		t.Fatal(err)
	}
	stork = restartStork(ctx, t, c, stork, nil)
	err = c.WaitFor(ctx, 2*time.Minute, "Restore copy to be gone", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(rs), &storkv1.Restore{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, stork.LogTail(20))
	}
	waitEvent(ctx, t, c, "app", "copy", "VolumeDiscarded")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the volume downloaded for the cancelled Restore: %v, want it removed", err)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: task.Spec.VolumeName}, &corev1.PersistentVolume{}); !apierrors.IsNotFound(err) {
		t.Errorf("PersistentVolume %s of the cancelled Restore: %v, want none", task.Spec.VolumeName, err)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "data-copy"}, &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Errorf("claim data-copy of the cancelled Restore: %v, want none", err)
	}
}
