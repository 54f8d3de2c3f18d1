package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/drivers/local/agent"
	"stork.dev/stork/internal/harness"
)

// TestCancelBackup deletes a Backup while its upload is under way, with MinIO paused (SIGSTOP)
// once the upload holds its repository lock, so that the upload hangs mid-flight rather than
// racing the delete. Within seconds the Backup records Cancelled, its upload task is gone and
// the agent has stopped the upload and removed its work files, although the lock it holds cannot
// be deleted from the paused store (releasing it is bounded: it goes stale by itself); once
// MinIO runs again, the Backup goes and the bucket holds no record of it: nothing half-written
// is ever visible as a backup.
func TestCancelBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio-cancel")
	if err != nil {
		t.Fatal(err)
	}
	c, node, agentProc := oneNodeCluster(ctx, t, env, "cancel")
	writeTree(t, makeLocalVolume(t, c, "app", "data", node, nil), 11, 64<<20)
	location(t, c, m, "app", "loc")
	err = c.WaitFor(ctx, time.Minute, "location loc to be Available", func(ctx context.Context) (bool, error) {
		l := &storkv1.BackupLocation{}
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "loc"}, l)
		return err == nil && l.Status.Phase == storkv1.BackupLocationAvailable, client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatal(err)
	}

	// Pause MinIO the moment the upload has taken its lock: its next request to the bucket
	// hangs, and so would deleting the lock when the upload is stopped (which once held the
	// cancelled task up until MinIO ran again).
	mustCreate(t, c, &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "big"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}, BackupLocation: "loc"}})
	task := waitTask(ctx, t, c, storkv1.TaskUpload)
	waitLockTaken(ctx, t, m, c.Name)
	resume := pauseMinIO(t, m)
	defer resume()

	b := &storkv1.Backup{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "big"}, b); err != nil {
		t.Fatal(err)
	}
	if b.Status.Phase == storkv1.BackupCompleted {
		t.Fatalf("Backup big completed before it could be cancelled (%d bytes): the test needs more data", b.Status.Progress.BytesTotal)
	}
	uid := b.UID
	deleted := time.Now()
	if err := c.Client.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	err = c.WaitFor(ctx, 15*time.Second, "Backup big to record Cancelled and its upload task to go", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return false, err
		}
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(&task), &storkv1.VolumeTask{})
		return b.Status.Phase == storkv1.BackupCancelled && apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("%v: Backup status %+v", err, b.Status)
	}
	waitAgentCancelled(ctx, t, c, agentProc, "upload")
	t.Logf("Backup Cancelled, its task deleted and the agent's upload stopped %s after the delete, with MinIO paused",
		time.Since(deleted).Round(100*time.Millisecond))
	if _, err := os.Stat(filepath.Join(c.NodeRoot(node), ".stork", "work", string(task.UID))); !os.IsNotExist(err) {
		t.Errorf("the agent's work directory of the cancelled task: %v, want it removed", err)
	}

	// MinIO back: the Backup goes once what the upload wrote is forgotten, and no record of it
	// exists, so no cluster ever lists it as a backup.
	resume()
	err = c.WaitFor(ctx, 2*time.Minute, "Backup big to be gone", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), &storkv1.Backup{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatal(err)
	}
	rp, closeRepo, err := openRepository(ctx, m, c.Name, "passphrase of the csi test")
	if err != nil {
		t.Fatal(err)
	}
	defer closeRepo()
	for _, kind := range []string{catalog.KindRecord, catalog.KindVolume} {
		if s, err := catalog.Find(ctx, rp, kind, string(uid)); err != nil || s != nil {
			t.Errorf("the cancelled Backup's %s snapshot in the repository: %+v (%v), want none", kind, s, err)
		}
	}
}

// minioStore opens prefix of MinIO's bucket with its root credentials.
func minioStore(ctx context.Context, m *harness.MinIO, prefix string) (*objstore.Store, error) {
	store, err := objstore.Open(ctx, objstore.Config{URL: "s3://" + m.Bucket + "/" + prefix,
		S3:          objstore.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
		Credentials: objstore.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}})
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", m.Bucket, err)
	}
	return store, nil
}

// waitLockTaken waits until the repository under prefix of MinIO's bucket has a lock object.
func waitLockTaken(ctx context.Context, t *testing.T, m *harness.MinIO, prefix string) {
	t.Helper()
	store, err := minioStore(ctx, m, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Every 10 ms, not WaitFor's 200: the upload goes on meanwhile.
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		locks := 0
		err := store.List(ctx, "locks/", func(objstore.Object) error { locks++; return nil })
		return locks > 0, err
	})
	if err != nil {
		t.Fatalf("waiting for a lock in %s/%s: %v", m.Bucket, prefix, err)
	}
}

// openRepository opens, with MinIO's root credentials, the repository under prefix of MinIO's
// bucket, as a user's storkctl would; closeRepo closes it and its store.
func openRepository(ctx context.Context, m *harness.MinIO, prefix, passphrase string) (rp *repo.Repository, closeRepo func(), err error) {
	store, err := minioStore(ctx, m, prefix)
	if err != nil {
		return nil, nil, err
	}
	if rp, err = repo.Open(ctx, store, repo.UserKey{Passphrase: passphrase}); err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("opening the repository in %s/%s: %w", m.Bucket, prefix, err)
	}
	return rp, func() { rp.Close(); store.Close() }, nil
}

// waitTask waits for a VolumeTask of type typ in namespace app and returns it.
func waitTask(ctx context.Context, t *testing.T, c *harness.Cluster, typ storkv1.VolumeTaskType) storkv1.VolumeTask {
	t.Helper()
	return waitTaskPhase(ctx, t, c, typ, "")
}

// pauseMinIO stops the MinIO process (SIGSTOP): its clients' requests hang rather than fail. The
// returned func lets it run again (SIGCONT); calling it more than once does nothing more.
func pauseMinIO(t *testing.T, m *harness.MinIO) (resume func()) {
	t.Helper()
	pid := m.Process.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := true
	return func() {
		if paused {
			paused = false
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
}

// waitAgentCancelled waits for the agent's log to say it stopped a task that was deleted.
func waitAgentCancelled(ctx context.Context, t *testing.T, c *harness.Cluster, agentProc *harness.Process, what string) {
	t.Helper()
	err := c.WaitFor(ctx, 15*time.Second, "the agent to stop the "+what, func(context.Context) (bool, error) {
		log, err := os.ReadFile(agentProc.LogPath)
		return strings.Contains(string(log), "task cancelled: it was deleted while running"), err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// oneNodeCluster starts a cluster with one simulated node, Stork's RBAC, the controller, the
// node's agent and namespace app; it returns the cluster, the node and its agent.
func oneNodeCluster(ctx context.Context, t *testing.T, env *harness.Env, name string, agentArgs ...string) (*harness.Cluster, string, *harness.Process) {
	t.Helper()
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: name, Nodes: harness.Nodes("n", "region-1", []string{"zone-a"}, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartStork(ctx); err != nil {
		t.Fatal(err)
	}
	const node = "n-zone-a-1"
	agent, err := c.StartAgent(ctx, node, agentArgs...)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})
	return c, node, agent
}

// TestCancelRestore deletes a Restore while its download is under way (MinIO paused the moment
// the Download task exists). The Restore records Cancelled and goes, its task goes and the agent
// stops the download and removes its work files, its access Secret is deleted, and no volume or
// claim is left for the unfinished download; the Backup stays whole and restorable.
func TestCancelRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio-cancelrs")
	if err != nil {
		t.Fatal(err)
	}
	c, node, agentProc := oneNodeCluster(ctx, t, env, "cancelrs")
	writeTree(t, makeLocalVolume(t, c, "app", "data", node, nil), 13, 64<<20)
	location(t, c, m, "app", "loc")
	mustCreate(t, c, &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s1"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}, BackupLocation: "loc"}})
	b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s1"}}
	waitBackup(t, c, b)

	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "copy"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "s1"}, VolumesOnly: true,
			ClaimNameMapping: map[string]string{"data": "data-copy"}}}
	mustCreate(t, c, rs)
	task := waitTask(ctx, t, c, storkv1.TaskDownload)
	resume := pauseMinIO(t, m)
	defer resume()

	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
		t.Fatal(err)
	}
	if rs.Status.Phase == storkv1.RestoreCompleted {
		t.Fatal("the Restore completed before it could be cancelled: the test needs more data")
	}
	uid := rs.UID
	deleted := time.Now()
	if err := c.Client.Delete(ctx, rs); err != nil {
		t.Fatal(err)
	}
	err = c.WaitFor(ctx, 15*time.Second, "Restore copy and its download task to go", func(ctx context.Context) (bool, error) {
		errR := c.Client.Get(ctx, client.ObjectKeyFromObject(rs), &storkv1.Restore{})
		errT := c.Client.Get(ctx, client.ObjectKeyFromObject(&task), &storkv1.VolumeTask{})
		return apierrors.IsNotFound(errR) && apierrors.IsNotFound(errT), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitAgentCancelled(ctx, t, c, agentProc, "download")
	t.Logf("Restore gone, its task deleted and the agent's download stopped %s after the delete, with MinIO paused", time.Since(deleted).Round(100*time.Millisecond))
	waitEvent(ctx, t, c, "app", "copy", "Cancelled")
	if _, err := os.Stat(filepath.Join(c.NodeRoot(node), ".stork", "work", string(task.UID))); !os.IsNotExist(err) {
		t.Errorf("the agent's work directory of the cancelled download: %v, want it removed", err)
	}
	var secrets corev1.SecretList
	if err := c.Client.List(ctx, &secrets, client.InNamespace(harness.StorkNamespace)); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if strings.Contains(s.Name, string(uid)) || strings.HasPrefix(s.Name, "stork-access-") {
			t.Errorf("access Secret %s left after the cancelled Restore", s.Name)
		}
	}
	var pvs corev1.PersistentVolumeList
	if err := c.Client.List(ctx, &pvs); err != nil {
		t.Fatal(err)
	}
	for _, pv := range pvs.Items {
		if ref := pv.Spec.ClaimRef; ref != nil && ref.Name == "data-copy" {
			t.Errorf("volume %s made for the cancelled Restore's claim", pv.Name)
		}
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "data-copy"}, &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Errorf("claim data-copy of the cancelled Restore: %v, want none", err)
	}

	// The Backup is whole: a new Restore of it completes once MinIO runs again.
	resume()
	again := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "again"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: "s1"}, VolumesOnly: true,
			ClaimNameMapping: map[string]string{"data": "data-again"}}}
	mustCreate(t, c, again)
	waitRestore(t, c, again, storkv1.RestoreCompleted)
}

// TestAgentSweepsOrphanedSnapshots: a Snapshot whose finalizer is removed by hand before it is
// deleted leaves its data on the node (nothing deletes it); once its capture task is gone too,
// the node's agent finds the snapshot, removes it and says so in an Event on its StorageNode.
func TestAgentSweepsOrphanedSnapshots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	c, node, _ := oneNodeCluster(ctx, t, env, "sweep", "--sweep-interval=1s", "--sweep-grace=2s")
	writeTree(t, makeLocalVolume(t, c, "app", "data", node, nil), 17, 1<<20)
	snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "forced"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}}}
	mustCreate(t, c, snap)
	waitSnapshot(t, c, snap, storkv1.SnapshotReady)
	dir := filepath.Join(c.NodeRoot(node), ".stork", "snapshots", snap.Status.Volumes[0].SnapshotID)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the snapshot's data: %v", err)
	}
	orig := snap.DeepCopy()
	snap.Finalizers = nil
	if err := c.Client.Patch(ctx, snap, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Delete(ctx, snap, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	err := c.WaitFor(ctx, 2*time.Minute, "the agent to remove the orphaned snapshot "+dir, func(context.Context) (bool, error) {
		_, err := os.Stat(dir)
		return os.IsNotExist(err), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, c, "default", agent.StorageNodeName(agent.DriverName, node), agent.EventOrphansRemoved)
}
