package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers/csi"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/internal/harness/csiplugin"
)

// TestCSIDriver runs Stork's csi driver against the real CSI control plane (csi-provisioner,
// csi-snapshotter, snapshot-controller and the test plugin, whose volumes are directories) and a
// real MinIO:
//
//   - a Stork Snapshot of two claims makes ReadyToUse VolumeSnapshots, with each volume's zone
//     read from its PersistentVolume;
//   - Restores make bound claims provisioned from them, in the same namespace and in another one
//     (through a pre-provisioned VolumeSnapshotContent, swept once the claims are bound);
//   - a CSI driver error reaches the Snapshot's status;
//   - a Backup copies the volumes to MinIO through data mover pods that this test runs in the
//     kubelet's place (the pod's command as the pod's service account, its claim and Secret
//     "mounted"): the first mover pod fails and is retried, and the stork controller is killed
//     while movers work; the pods are restricted and carry no credentials in their arguments or
//     environment, and every temporary is gone at the end;
//   - a Restore from that Backup into a third namespace brings the same bytes back through
//     mover pods and hands the volumes over to the target claims.
func TestCSIDriver(t *testing.T) {
	harness.RequireCSIBinaries(t)
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio")
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "csi", Nodes: harness.Nodes("c", "r1", []string{"zone-a", "zone-b"}, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	plane, err := c.StartCSI(ctx, harness.CSIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	storkArgs := []string{"--drivers=local,csi", "--driver-config=csi.sweepInterval=2s", "--driver-config=csi.moverMaxPerNode=1",
		"--driver-config=csi.moverImage=stork:e2e"}
	stork, err := c.StartStork(ctx, storkArgs...)
	if err != nil {
		t.Fatal(err)
	}
	movers := &harness.MoverPods{Cluster: c,
		VolumeDir: func(pv *corev1.PersistentVolume) string { return plane.VolumeDir(pv.Spec.CSI.VolumeHandle) },
		// The first mover pod of data-1's backup crashes: the driver starts another.
		Fail: func(p *corev1.Pod) string {
			task := &storkv1.VolumeTask{}
			for _, a := range p.Spec.Containers[0].Args {
				if ns, name, ok := strings.Cut(strings.TrimPrefix(a, "--task="), "/"); ok && strings.HasPrefix(a, "--task=") {
					_ = c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, task)
				}
			}
			if task.Spec.Type == storkv1.TaskUpload && task.Spec.Tags["pvc"] == "data-1" && strings.HasSuffix(p.Name, "-1") {
				return "injected crash of the first mover pod"
			}
			return ""
		}}
	mctx, stopMovers := context.WithCancel(ctx)
	defer stopMovers()
	movers.Run(mctx)

	t.Run("RBAC: the controller and the movers get what the csi driver uses and no more", func(t *testing.T) {
		checkAccess(ctx, t, c, []access{
			{"stork", "create", "snapshot.storage.k8s.io", "volumesnapshots", "", "app", "", true},
			{"stork", "update", "snapshot.storage.k8s.io", "volumesnapshots", "", "app", "x", false},
			{"stork", "create", "snapshot.storage.k8s.io", "volumesnapshotcontents", "", "", "", true},
			{"stork", "create", "snapshot.storage.k8s.io", "volumesnapshotclasses", "", "", "", false},
			{"stork", "create", "groupsnapshot.storage.k8s.io", "volumegroupsnapshots", "", "app", "", true},
			{"stork", "list", "storage.k8s.io", "csinodes", "", "", "", true},
			{"stork", "update", "storage.k8s.io", "csinodes", "", "", "x", false},
			{"stork", "create", "", "pods", "", harness.StorkNamespace, "", true},
			{"stork", "create", "", "pods", "", "app", "", false},
			{"stork", "delete", "", "pods", "", "app", "x", false},
			{"stork-mover", "get", "stork.dev", "volumetasks", "", "app", "x", true},
			{"stork-mover", "patch", "stork.dev", "volumetasks", "status", "app", "x", true},
			{"stork-mover", "patch", "stork.dev", "volumetasks", "", "app", "x", false},
			{"stork-mover", "list", "stork.dev", "volumetasks", "", "app", "", false},
			{"stork-mover", "get", "", "secrets", "", harness.StorkNamespace, "x", false},
			{"stork-mover", "get", "", "persistentvolumeclaims", "", "app", "x", false},
			{"stork-mover", "patch", "stork.dev", "backups", "status", "app", "x", false},
		})
	})

	mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})

	t.Run("a mover writes the status of its own task only (admission policy stork-mover-tasks)", func(t *testing.T) {
		task := func(name string) *storkv1.VolumeTask {
			tk := &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name},
				Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskUpload, Driver: csi.Name, VolumeName: "pv-x", SnapshotID: "snap",
					BackupLocation: "loc", AccessSecretName: "stork-access-x"}}
			mustCreate(t, c, tk)
			return tk
		}
		own, other := task("tenancy-own"), task("tenancy-other")
		// A pod named as the driver names the mover of own's first attempt; its token, bound to
		// it, is what the kubelet would give the mover.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: csi.MoverPodPrefix + string(own.UID) + "-1"},
			Spec: corev1.PodSpec{ServiceAccountName: "stork-mover", RestartPolicy: corev1.RestartPolicyNever,
				NodeSelector: map[string]string{"stork.dev/no-such-node": "true"}, Containers: []corev1.Container{{Name: "mover", Image: "stork"}}}}
		mustCreate(t, c, pod)
		kc, err := c.PodTokenKubeconfig(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		unbound, err := c.ServiceAccountKubeconfig(harness.StorkNamespace, "stork-mover")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name       string
			kubeconfig string
			task       *storkv1.VolumeTask
			allowed    bool
		}{
			{"its own task", kc, own, true},
			{"another task", kc, other, false},
			{"a credential bound to no pod", unbound, own, false},
		} {
			cl, err := harness.ClientFromKubeconfig(tc.kubeconfig)
			if err != nil {
				t.Fatal(err)
			}
			tk := &storkv1.VolumeTask{}
			if err := cl.Get(ctx, client.ObjectKeyFromObject(tc.task), tk); err != nil {
				t.Fatalf("%s: reading the task: %v", tc.name, err)
			}
			orig := tk.DeepCopy()
			tk.Status.Message = "written by " + tc.name
			err = cl.Status().Patch(ctx, tk, client.MergeFrom(orig))
			if tc.allowed != (err == nil) || (err != nil && !strings.Contains(err.Error(), "a data mover writes the status of the VolumeTask its own pod")) {
				t.Errorf("%s: patching the status of task %s: %v, want allowed %v", tc.name, tc.task.Name, err, tc.allowed)
			}
		}
		for _, o := range []client.Object{pod, own, other} {
			if err := c.Client.Delete(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	})

	db := map[string]string{"app": "db"}
	sources := map[string]string{} // claim → data directory
	for i, name := range []string{"data-0", "data-1"} {
		pvc := csiClaim(name, plane.ImmediateClass, nil)
		pvc.Labels = db
		mustCreate(t, c, pvc)
		pv := waitClaimBound(t, c, pvc)
		sources[name] = plane.VolumeDir(pv.Spec.CSI.VolumeHandle)
		writeTree(t, sources[name], uint64(40+i), (1+i)<<20)
	}

	var snap *storkv1.Snapshot
	t.Run("snapshot makes ReadyToUse VolumeSnapshots", func(t *testing.T) {
		snap = &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "snap"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: db}}}}
		mustCreate(t, c, snap)
		waitSnapshot(t, c, snap, storkv1.SnapshotReady)
		for _, v := range snap.Status.Volumes {
			if v.Driver != csi.Name || v.SnapshotID == "" || v.Topology.Zone == "" || v.SizeBytes == 0 {
				t.Errorf("claim %s: driver %q, snapshot %q, zone %q, size %d; want csi, a VolumeSnapshot, the volume's zone and a size",
					v.ClaimName, v.Driver, v.SnapshotID, v.Topology.Zone, v.SizeBytes)
			}
			vs := &snapv1.VolumeSnapshot{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: v.SnapshotID}, vs); err != nil {
				t.Fatalf("the VolumeSnapshot of claim %s: %v", v.ClaimName, err)
			}
			if vs.Status == nil || !ptr.Deref(vs.Status.ReadyToUse, false) || ptr.Deref(vs.Spec.Source.PersistentVolumeClaimName, "") != v.ClaimName {
				t.Errorf("VolumeSnapshot %s: source %v, status %+v; want ReadyToUse of claim %s", vs.Name, vs.Spec.Source, vs.Status, v.ClaimName)
			}
			if vs.Labels[csi.LabelSnapshot] != string(snap.UID) {
				t.Errorf("VolumeSnapshot %s is labelled %v, want %s=%s", vs.Name, vs.Labels, csi.LabelSnapshot, snap.UID)
			}
		}
	})

	restored := func(t *testing.T, ns string, names map[string]string) {
		t.Helper()
		for src, target := range names {
			pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: target}}
			pv := waitClaimBound(t, c, pvc)
			compareTrees(t, sources[src], plane.VolumeDir(pv.Spec.CSI.VolumeHandle))
		}
	}
	t.Run("restore provisions claims from the snapshots, in the same and another namespace", func(t *testing.T) {
		same := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "copies"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: "snap"},
				ClaimNameMapping: map[string]string{"data-0": "copy-0", "data-1": "copy-1"}}}
		mustCreate(t, c, same)
		waitRestore(t, c, same, storkv1.RestoreCompleted)
		restored(t, "app", map[string]string{"data-0": "copy-0", "data-1": "copy-1"})
		for _, claim := range []string{"copy-0", "copy-1"} {
			pvc := &corev1.PersistentVolumeClaim{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: claim}, pvc); err != nil {
				t.Fatal(err)
			}
			if ds := pvc.Spec.DataSource; ds == nil || ds.Kind != "VolumeSnapshot" {
				t.Errorf("claim %s has data source %+v, want a VolumeSnapshot", claim, ds)
			}
		}

		other := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "to-app2"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{Namespace: "app", SnapshotName: "snap"},
				NamespaceMapping: map[string]string{"app": "app2"}}}
		mustCreate(t, c, other)
		waitRestore(t, c, other, storkv1.RestoreCompleted)
		restored(t, "app2", map[string]string{"data-0": "data-0", "data-1": "data-1"})
		// The VolumeSnapshots and contents made in app2 for the restore are swept once the
		// claims are bound; the source's snapshots are untouched.
		waitNoTemporaries(t, c, "app2")
		for _, v := range snap.Status.Volumes {
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: v.SnapshotID}, &snapv1.VolumeSnapshot{}); err != nil {
				t.Errorf("the source's VolumeSnapshot %s: %v", v.SnapshotID, err)
			}
		}
	})

	t.Run("a CSI driver error shows in the Snapshot's status", func(t *testing.T) {
		pvc := csiClaim("broken", plane.ImmediateClass, nil)
		mustCreate(t, c, pvc)
		pv := waitClaimBound(t, c, pvc)
		const why = "volume is being resized, try later"
		writeString(t, filepath.Join(plane.VolumeDir(pv.Spec.CSI.VolumeHandle), csiplugin.FailSnapshotFile), why)
		bad := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "bad"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "broken"}}}
		mustCreate(t, c, bad)
		waitSnapshot(t, c, bad, storkv1.SnapshotFailed)
		v := bad.Status.Volumes[0]
		if v.Phase != storkv1.VolumeFailed || v.Reason != "SnapshotFailed" || !strings.Contains(v.Message, why) {
			t.Errorf("volume status %s %s %q; want Failed SnapshotFailed with the driver's message %q", v.Phase, v.Reason, v.Message, why)
		}
		if msg := conditionMsg(bad.Status.Conditions, storkv1.ConditionReady); !strings.Contains(msg, why) {
			t.Errorf("Ready condition %q does not carry the driver's message", msg)
		}
	})

	location(t, c, m, "app", "minio")
	var backup *storkv1.Backup
	t.Run("backup through data mover pods, with a crashed mover and a killed controller", func(t *testing.T) {
		bsnap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "nightly"},
			Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: db}}, BackupLocation: "minio"}}
		mustCreate(t, c, bsnap)
		// Kill the controller once a mover pod has started, and start it again.
		if err := c.WaitFor(ctx, 2*time.Minute, "a mover pod to start", func(context.Context) (bool, error) {
			return len(movers.Snapshot()) > 0, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(stork.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-stork.Exited()
		if stork, err = c.StartStork(ctx, storkArgs...); err != nil {
			t.Fatal(err)
		}
		waitSnapshot(t, c, bsnap, storkv1.SnapshotReady)
		backup = &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: bsnap.Status.BackupName}}
		waitBackup(t, c, backup)
		for _, v := range backup.Status.Volumes {
			if v.Phase != storkv1.VolumeSucceeded || v.RepositorySnapshotID == "" || v.Progress.BytesTotal == 0 || v.Progress.BytesDone != v.Progress.BytesTotal {
				t.Errorf("backup volume %s: %s, backup %q, progress %+v", v.ClaimName, v.Phase, v.RepositorySnapshotID, v.Progress)
			}
		}
		var tasks storkv1.VolumeTaskList
		if err := c.Client.List(ctx, &tasks, client.InNamespace("app"), client.MatchingLabels{storkv1.LabelTaskDriver: csi.Name}); err != nil {
			t.Fatal(err)
		}
		retried := 0
		for _, task := range tasks.Items {
			if task.Status.Phase != storkv1.TaskSucceeded {
				t.Errorf("task %s is %s: %s", task.Name, task.Status.Phase, task.Status.Message)
			}
			if task.Status.Attempts > 1 {
				retried++
			}
		}
		if len(tasks.Items) != 2 || retried != 1 {
			t.Errorf("%d upload tasks, %d of them retried; want 2 and 1 (the crashed mover's)", len(tasks.Items), retried)
		}
		checkMoverPods(t, movers.Snapshot(), m, true)
		waitNoTemporaries(t, c, harness.StorkNamespace)
	})
	if backup == nil {
		t.FailNow()
	}

	t.Run("storkctl shows the backup's volumes", func(t *testing.T) {
		out := storkctl(t, c, "backup", "describe", backup.Name, "-n", "app")
		for _, want := range []string{"Completed", "data-0", "data-1", csi.Name, "2 of 2 volumes"} {
			if !strings.Contains(out, want) {
				t.Errorf("storkctl backup describe lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("restore from the backup through mover pods into another namespace", func(t *testing.T) {
		before := len(movers.Snapshot())
		// The zones are swapped: the class provisions at once, so the volume must be placed.
		swap := map[string]string{"zone-a": "zone-b", "zone-b": "zone-a"}
		r := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "from-backup"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{Namespace: "app", BackupName: backup.Name}, Verify: true,
				NamespaceMapping: map[string]string{"app": "app3"}, ZoneMapping: &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: swap}}}
		mustCreate(t, c, r)
		waitRestore(t, c, r, storkv1.RestoreCompleted)
		restored(t, "app3", map[string]string{"data-0": "data-0", "data-1": "data-1"})
		for _, v := range r.Status.Volumes {
			if v.Verification == nil || v.Verification.Files == 0 {
				t.Errorf("volume %s: verification %+v, want the mover to have read every file back", v.SourceClaim, v.Verification)
			}
		}
		for _, claim := range []string{"data-0", "data-1"} {
			pvc := &corev1.PersistentVolumeClaim{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app3", Name: claim}, pvc); err != nil {
				t.Fatal(err)
			}
			// Retain while it is handed over; the class's Delete once it is bound.
			pv := &corev1.PersistentVolume{}
			err := c.WaitFor(ctx, 30*time.Second, "the reclaim policy of "+pvc.Spec.VolumeName, func(ctx context.Context) (bool, error) {
				err := c.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv)
				return err == nil && pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete, err
			})
			for _, v := range backup.Status.Volumes {
				if v.ClaimName == claim && pvZone(pv, plane.TopologyKey) != swap[v.Topology.Zone] {
					t.Errorf("claim %s was backed up in %s and restored in %s, want %s (zone mapping)", claim, v.Topology.Zone, pvZone(pv, plane.TopologyKey), swap[v.Topology.Zone])
				}
			}
			if err != nil || pv.Labels[csi.LabelRestoredFromBackup] == "" || pv.Labels[csi.LabelHandOver] != "" {
				t.Errorf("restored PV %s: %v; reclaim policy %s, labels %v; want the class's Delete back, the backup named, no hand-over mark",
					pv.Name, err, pv.Spec.PersistentVolumeReclaimPolicy, pv.Labels)
			}
		}
		checkMoverPods(t, movers.Snapshot()[before:], m, false)
		waitNoTemporaries(t, c, harness.StorkNamespace)
		if n := movers.MaxPerNode(); n > 1 {
			t.Errorf("%d mover pods ran on one node at once; csi.moverMaxPerNode is 1", n)
		}
	})
}

// checkMoverPods checks the specs of the mover pods that ran: restricted, the access Secret as a
// volume, no credentials in arguments or environment, the volume read-only for backups.
func checkMoverPods(t *testing.T, pods []harness.StartedPod, m *harness.MinIO, backup bool) {
	t.Helper()
	if len(pods) == 0 {
		t.Fatal("no mover pod ran")
	}
	for _, p := range pods {
		ct := p.Spec.Containers[0]
		all := strings.Join(append(append([]string{}, ct.Command...), ct.Args...), " ")
		for _, e := range ct.Env {
			all += " " + e.Name + "=" + e.Value
		}
		for _, secret := range []string{m.AccessKey, m.SecretKey, "passphrase of the csi test"} {
			if strings.Contains(all, secret) {
				t.Errorf("pod %s carries a credential in its command or environment: %s", p.Name, all)
			}
		}
		wantVerb := "restore"
		if backup {
			wantVerb = "backup"
		}
		if !strings.Contains(all, "stork-agent mover "+wantVerb) {
			t.Errorf("pod %s runs %q, want stork-agent mover %s", p.Name, all, wantVerb)
		}
		psc, sc := p.Spec.SecurityContext, ct.SecurityContext
		if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil || sc == nil ||
			ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) == 0 {
			t.Errorf("pod %s is not restricted: pod %+v, container %+v", p.Name, psc, sc)
		}
		if ct.Resources.Requests.Cpu().IsZero() || ct.Resources.Limits.Memory().IsZero() {
			t.Errorf("pod %s has no resource requests or limits: %+v", p.Name, ct.Resources)
		}
		var secretVol, claimRO bool
		for _, v := range p.Spec.Volumes {
			secretVol = secretVol || v.Secret != nil
			if v.PersistentVolumeClaim != nil {
				claimRO = v.PersistentVolumeClaim.ReadOnly
			}
		}
		if !secretVol || claimRO != backup {
			t.Errorf("pod %s: Secret volume %t, claim read-only %t (want true, %t)", p.Name, secretVol, claimRO, backup)
		}
		if p.Spec.Affinity == nil || p.Spec.Affinity.NodeAffinity == nil {
			t.Errorf("pod %s has no node affinity", p.Name)
		}
	}
}

// waitNoTemporaries waits until the csi driver's temporaries in ns (mover pods, temporary
// claims, VolumeSnapshots) and its VolumeSnapshotContents are gone.
func waitNoTemporaries(t *testing.T, c *harness.Cluster, ns string) {
	t.Helper()
	temp := client.MatchingLabels{csi.LabelTemporary: "true"}
	err := c.WaitFor(context.Background(), time.Minute, "the temporaries in "+ns+" to be deleted", func(ctx context.Context) (bool, error) {
		var left []string
		for _, l := range []client.ObjectList{&corev1.PodList{}, &corev1.PersistentVolumeClaimList{}, &snapv1.VolumeSnapshotList{}} {
			if err := c.Client.List(ctx, l, client.InNamespace(ns), temp); err != nil {
				return false, err
			}
			left = append(left, names(l)...)
		}
		var contents snapv1.VolumeSnapshotContentList
		if err := c.Client.List(ctx, &contents, temp); err != nil {
			return false, err
		}
		for _, vc := range contents.Items {
			if vc.Spec.VolumeSnapshotRef.Namespace == ns {
				left = append(left, vc.Name)
			}
		}
		if len(left) > 0 {
			t.Logf("temporaries left in %s: %v", ns, left)
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func names(l client.ObjectList) []string {
	var out []string
	switch l := l.(type) {
	case *corev1.PodList:
		for _, o := range l.Items {
			out = append(out, "pod/"+o.Name)
		}
	case *corev1.PersistentVolumeClaimList:
		for _, o := range l.Items {
			out = append(out, "pvc/"+o.Name)
		}
	case *snapv1.VolumeSnapshotList:
		for _, o := range l.Items {
			out = append(out, "volumesnapshot/"+o.Name)
		}
	}
	return out
}

func waitBackup(t *testing.T, c *harness.Cluster, b *storkv1.Backup) {
	t.Helper()
	err := c.WaitFor(context.Background(), 3*time.Minute, "Backup "+b.Name+" to complete", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		switch b.Status.Phase {
		case storkv1.BackupCompleted:
			return true, nil
		case storkv1.BackupFailed, storkv1.BackupPartiallyFailed:
			return false, fmt.Errorf("Backup %s is %s: %+v", b.Name, b.Status.Phase, b.Status)
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// location makes a BackupLocation on the MinIO bucket in ns.
func location(t *testing.T, c *harness.Cluster, m *harness.MinIO, ns, name string) {
	t.Helper()
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-creds"},
		StringData: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": m.SecretKey}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-key"},
		StringData: map[string]string{"passphrase": "passphrase of the csi test"}})
	mustCreate(t, c, &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: storkv1.BackupLocationSpec{URL: "s3://" + m.Bucket + "/" + c.Name,
			S3:                     &storkv1.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
			CredentialsSecretRef:   &storkv1.SecretReference{Name: name + "-creds"},
			EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: name + "-key", Key: "passphrase"}}})
}

func conditionMsg(conds []metav1.Condition, typ string) string {
	for _, c := range conds {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}

// storkctl runs storkctl with the cluster's admin kubeconfig and returns its output.
func storkctl(t *testing.T, c *harness.Cluster, args ...string) string {
	t.Helper()
	bins, err := harness.Commands()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bins, "storkctl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("storkctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
