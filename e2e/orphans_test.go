package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/controllers"
	"stork.dev/stork/drivers/local/agent"
	"stork.dev/stork/internal/crashpoint"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/placement"
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
		waitCrashed(t, stork, controllers.CrashCaptureRequested)
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
	waitCrashed(t, stork, restore.CrashImportRequested)
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
	for _, p := range []string{dir, filepath.Join(c.NodeRoot(node), ".stork", "restored", string(task.UID))} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s of the cancelled Restore: %v, want it removed", p, err)
		}
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: task.Spec.VolumeName}, &corev1.PersistentVolume{}); !apierrors.IsNotFound(err) {
		t.Errorf("PersistentVolume %s of the cancelled Restore: %v, want none", task.Spec.VolumeName, err)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "data-copy"}, &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Errorf("claim data-copy of the cancelled Restore: %v, want none", err)
	}

	// RBAC lets the controller delete volumes; the admission policy shipped beside it narrows
	// that to the ones it restored.
	data := &corev1.PersistentVolumeClaim{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "data"}, data); err != nil {
		t.Fatal(err)
	}
	err = asStork(t, c).Delete(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: data.Spec.VolumeName}}, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "deletes only the PersistentVolumes it restored") {
		t.Errorf("the controller's identity deleting the application's volume %s (dry run): %v, want refused by the admission policy", data.Spec.VolumeName, err)
	}
}

// asStork is a client acting as the stork controller's service account.
func asStork(t *testing.T, c *harness.Cluster) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + harness.StorkNamespace + ":stork"}
	cl, err := client.New(cfg, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestCancelledFailoverRemovesTheCopy: a failover whose old node's storage comes back before
// the pod moved is cancelled, and its restored copy (PersistentVolume and data on the other
// node) is removed, with an Event CopyRemoved; the claim keeps its volume and the pod its node.
// The controller is killed right after the copy is reserved for the claim (before the monitor
// evicts), the old node's agent started again while it is down.
func TestCancelledFailoverRemovesTheCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "focancel", Nodes: harness.Nodes("f", "r1", []string{"zone-a"}, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	const oldNode, newNode = "f-zone-a-1", "f-zone-a-2"
	storkArgs := []string{"--monitor-probation=3s", "--monitor-interval=1s", "--monitor-batch-interval=1s", "--monitor-stale-after=90s"}
	stork, err := c.StartStorkEnv(ctx, []string{crashpoint.EnvVar + "=" + placement.CrashFailoverRestored}, storkArgs...)
	if err != nil {
		t.Fatal(err)
	}
	c.RunPods()
	agents := map[string]*harness.Process{}
	for _, n := range []string{oldNode, newNode} {
		if agents[n], err = c.StartAgent(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, c, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)})
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "key"}, StringData: map[string]string{"passphrase": "failover cancel key"}})
	mustCreate(t, c, &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bucket"},
		Spec: storkv1.BackupLocationSpec{URL: "file://" + filepath.Join(c.Dir, "bucket"), EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"}}})
	writeTree(t, makeLocalVolume(t, c, "shop", "data-db-0", oldNode, nil), 24, 1<<20)
	orig := optIntoFailover(ctx, t, c)
	mustCreate(t, c, &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-nightly"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data-db-0"}, BackupLocation: "bucket"}})
	waitBackup(t, c, &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-nightly"}})
	labels := map[string]string{"app": "db"}
	mustCreate(t, c, dbStatefulSet(labels))
	pod := waitPod(ctx, t, c, labels, "")
	if pod.Spec.NodeName != oldNode {
		t.Fatalf("db-0 on %s, want %s where its volume is", pod.Spec.NodeName, oldNode)
	}

	// The old node's storage fails; the failover restores the backup on the other node, reserves
	// the copy, and the controller dies there.
	if err := agents[oldNode].Kill(); err != nil {
		t.Fatal(err)
	}
	waitCrashed(t, stork, placement.CrashFailoverRestored)
	old := &corev1.PersistentVolume{}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: orig.Spec.VolumeName}, old); err != nil {
		t.Fatal(err)
	}
	copyPV, restoreName := old.Annotations["stork.dev/failover-volume"], old.Annotations["stork.dev/failover-restore"]
	if old.Annotations[placement.AnnotationFailoverPhase] != placement.FailoverRepointing || copyPV == "" {
		t.Fatalf("the old volume's failover state %v, want Repointing with the copy named", old.Annotations)
	}
	copyDir := filepath.Join(c.NodeRoot(newNode), "volumes", copyPV)
	if _, err := os.Stat(copyDir); err != nil {
		t.Fatalf("the restored copy: %v", err)
	}

	// The old node's storage is back before the pod moved: the failover is called off.
	if agents[oldNode], err = c.StartAgent(ctx, oldNode); err != nil {
		t.Fatal(err)
	}
	err = c.WaitFor(ctx, time.Minute, "the storage of "+oldNode+" to be Healthy", func(ctx context.Context) (bool, error) {
		sn := &storkv1.StorageNode{}
		err := c.Client.Get(ctx, client.ObjectKey{Name: agent.StorageNodeName(agent.DriverName, oldNode)}, sn)
		return err == nil && sn.Status.Health == storkv1.StorageHealthy, client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatal(err)
	}
	if stork, err = c.StartStork(ctx, storkArgs...); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, c, "shop", restoreName, "CopyRemoved")
	err = c.WaitFor(ctx, time.Minute, "the copy's volume and data to be gone", func(ctx context.Context) (bool, error) {
		errPV := c.Client.Get(ctx, client.ObjectKey{Name: copyPV}, &corev1.PersistentVolume{})
		_, errDir := os.Stat(copyDir)
		return apierrors.IsNotFound(errPV) && os.IsNotExist(errDir), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Name: orig.Spec.VolumeName}, old); err != nil || old.Annotations[placement.AnnotationFailoverPhase] != placement.FailoverCancelled {
		t.Errorf("the failover: %v, phase %q, want Cancelled", err, old.Annotations[placement.AnnotationFailoverPhase])
	}
	now := &corev1.PersistentVolumeClaim{}
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(orig), now); err != nil || now.UID != orig.UID || now.Spec.VolumeName != orig.Spec.VolumeName {
		t.Errorf("claim data-db-0: %v, bound to %s; want the same claim on its own volume %s", err, now.Spec.VolumeName, orig.Spec.VolumeName)
	}
	if still := waitPod(ctx, t, c, labels, ""); still.UID != pod.UID {
		t.Errorf("db-0 was moved (now %s on %s), want it left on %s", still.UID, still.Spec.NodeName, oldNode)
	}
}

// waitCrashed waits for p to kill itself at crash point point.
func waitCrashed(t *testing.T, p *harness.Process, point string) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s did not die at %s:\n%s", p.Name, point, p.LogTail(30))
	}
	if log, _ := os.ReadFile(p.LogPath); !strings.Contains(string(log), crashpoint.Message(point)) {
		t.Fatalf("%s exited, but not at %s:\n%s", p.Name, point, p.LogTail(30))
	}
}
