package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
	"stork.dev/stork/internal/treesum"
)

// storkStory is the disaster-recovery story. Site A runs Stork — the controller and one agent
// per node, under the RBAC of deploy/base/manifests — and an application whose data is snapshotted,
// restored locally and backed up every minute by a schedule, with its Kubernetes objects. Site
// B, a second cluster in other zones, reads the same bucket, sees the backups through sync and
// restores the application into a mapped namespace and zones; the data is compared. It returns
// site B's cluster.
func storkStory(ctx context.Context, out io.Writer, step func(string), env *harness.Env, a *harness.Cluster, bk bucket, real *realNode) (*harness.Cluster, error) {
	step("Starting Stork on site A: the controller, and a stork-agent per node with its own storage root")
	if err := startStork(ctx, out, a); err != nil {
		return nil, err
	}
	loc := &storkv1.BackupLocation{}
	if err := a.WaitFor(ctx, time.Minute, "the BackupLocation to be checked", func(ctx context.Context) (bool, error) {
		err := a.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "backups"}, loc)
		return err == nil && loc.Status.Phase != "", err
	}); err != nil {
		return nil, err
	}
	cond := meta.FindStatusCondition(loc.Status.Conditions, storkv1.ConditionAvailable)
	fmt.Fprintf(out, "  BackupLocation backups: %s (%s) — repository %s initialised\n", loc.Status.Phase, cond.Reason, loc.Status.RepositoryID)

	step("A database writes its data: two claims, on nodes in zone-a and zone-b, with its config, secret, service and deployment")
	dbNodes := map[string]string{"data-0": "node-zone-a-1", "data-1": "node-zone-b-1"}
	dirs := map[string]string{}
	for _, claim := range []string{"data-0", "data-1"} {
		dir, err := a.LocalVolume(ctx, namespace, claim, dbNodes[claim], db)
		if err != nil {
			return nil, err
		}
		if err := writeData(dir, claim); err != nil {
			return nil, err
		}
		dirs[claim] = dir
		sum, files, size, err := treeSum(dir)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "  %s on %s: %d files, %s, sha256 %s\n", claim, dbNodes[claim], files, human(size), sum[:16])
	}
	for _, o := range appObjects() {
		if err := a.Client.Create(ctx, o); err != nil {
			return nil, fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}

	step("Snapshot db-snap: both claims of app=db, as one group")
	snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db-snap"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: db}}}}
	if err := a.Client.Create(ctx, snap); err != nil {
		return nil, err
	}
	if err := waitProgress(ctx, out, a, snap, func() (string, storkv1.Progress, bool) {
		return string(snap.Status.Phase), snap.Status.Progress, snap.Status.Phase == storkv1.SnapshotReady || snap.Status.Phase == storkv1.SnapshotFailed
	}); err != nil {
		return nil, err
	}
	if snap.Status.Phase != storkv1.SnapshotReady {
		return nil, fmt.Errorf("snapshot db-snap %s: %v", snap.Status.Phase, snap.Status.Conditions)
	}
	for _, v := range snap.Status.Volumes {
		fmt.Fprintf(out, "  %s: captured on %s (%s), %s\n", v.ClaimName, v.Node, v.Topology.Zone, human(v.SizeBytes))
	}
	before, err := sums(dirs)
	if err != nil {
		return nil, err
	}
	for _, dir := range dirs {
		// The application goes on writing after the snapshot.
		if err := os.WriteFile(filepath.Join(dir, "after-snapshot.log"), []byte("written later\n"), 0o644); err != nil {
			return nil, err
		}
	}

	step("Restore db-snap into namespace stork-demo-copy on site A (an administrator's Restore, in stork-system)")
	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "db-copy"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{Namespace: namespace, SnapshotName: "db-snap"},
			NamespaceMapping: map[string]string{namespace: namespace + "-copy"}}}
	if err := restoreAndCompare(ctx, out, a, rs, before, "the snapshot"); err != nil {
		return nil, err
	}

	step("A SnapshotSchedule on site A: every minute, snapshot the app and back it up to the bucket with its objects")
	sched := &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db-every-minute"},
		Spec: storkv1.SnapshotScheduleSpec{Schedule: "* * * * *",
			Retention: storkv1.Retention{KeepLast: 2}, BackupRetention: &storkv1.Retention{KeepLast: 5, KeepDaily: 7},
			Template: storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{Source: snap.Spec.Source, IncludeResources: true, BackupLocation: "backups"}}}}
	if err := a.Client.Create(ctx, sched); err != nil {
		return nil, err
	}
	if err := a.WaitFor(ctx, time.Minute, "the schedule's next run", func(ctx context.Context) (bool, error) {
		err := a.Client.Get(ctx, client.ObjectKeyFromObject(sched), sched)
		return err == nil && sched.Status.NextScheduleTime != nil, err
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  schedule %q: next run at %s; keeps 2 snapshots and 5 backups (and one a day for a week)\n",
		sched.Spec.Schedule, sched.Status.NextScheduleTime.UTC().Format("15:04:05"))
	// What the scheduled backups hold: the application does not write any more.
	held, err := sums(dirs)
	if err != nil {
		return nil, err
	}

	key := &corev1.Secret{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "stork-demo-key"}, key); err != nil {
		return nil, err
	}
	var b *harness.Cluster
	zones := map[string]string{"zone-a": "zone-c", "zone-b": "zone-d"}
	if real != nil {
		step("Meanwhile, site B: a second cluster with a real node in zone-c; Stork installed with Helm, its BackupLocation reads the same bucket (ReadOnly)")
		if b, err = startRealSiteB(ctx, out, env, real, bk, string(key.Data["passphrase"])); err != nil {
			return nil, err
		}
		zones["zone-b"] = "zone-c" // one real node: both claims come to it
	} else {
		step("Meanwhile, site B: a second cluster in zone-c and zone-d, whose BackupLocation reads the same bucket (ReadOnly)")
		started := time.Now()
		if b, err = env.StartCluster(ctx, harness.ClusterOptions{Name: "site-b", Nodes: harness.Nodes("node", "region-2", []string{"zone-c", "zone-d"}, 1)}); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "  site B's control plane up in %.1fs\n", time.Since(started).Seconds())
		if err := startStork(ctx, out, b); err != nil {
			return nil, err
		}
		if err := createLocation(ctx, b.Client, drNamespace, bk, string(key.Data["passphrase"]), storkv1.AccessReadOnly); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "  BackupLocation %s/backups → %s (ReadOnly, synced every 10s)\n", drNamespace, bk.url)

	step("Site A: the schedule's first run snapshots the app and backs it up")
	var backup storkv1.Backup
	if err := a.WaitFor(ctx, 2*time.Minute, "the schedule's first Backup", func(ctx context.Context) (bool, error) {
		var list storkv1.BackupList
		err := a.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{"stork.dev/schedule": sched.Name})
		if err == nil && len(list.Items) > 0 {
			backup = list.Items[0]
		}
		return err == nil && len(list.Items) > 0, err
	}); err != nil {
		return nil, err
	}
	if err := waitProgress(ctx, out, a, &backup, func() (string, storkv1.Progress, bool) {
		p := backup.Status.Phase
		return string(p), backup.Status.Progress, p == storkv1.BackupCompleted || p == storkv1.BackupPartiallyFailed || p == storkv1.BackupFailed
	}); err != nil {
		return nil, err
	}
	if backup.Status.Phase != storkv1.BackupCompleted {
		return nil, fmt.Errorf("backup %s %s: %v", backup.Name, backup.Status.Phase, backup.Status.Conditions)
	}
	for _, v := range backup.Status.Volumes {
		fmt.Fprintf(out, "  %s (zone %s) → repository snapshot %s\n", v.ClaimName, v.Topology.Zone, v.RepositorySnapshotID[:12])
	}
	fmt.Fprintf(out, "  %d Kubernetes objects → repository snapshot %s; record %s written last\n",
		backup.Status.ResourceCount, backup.Status.ResourcesSnapshotID[:12], backup.Status.RecordID[:12])

	step("Site B: sync finds site A's backup in the bucket")
	var imported storkv1.Backup
	if err := b.WaitFor(ctx, time.Minute, "the backup to be imported on site B", func(ctx context.Context) (bool, error) {
		var list storkv1.BackupList
		if err := b.Client.List(ctx, &list, client.InNamespace(drNamespace)); err != nil {
			return false, err
		}
		for _, bk := range list.Items {
			// Sync creates the Backup, then writes its status.
			if bk.Annotations["stork.dev/source-uid"] == string(backup.UID) && bk.Status.RecordID != "" {
				imported = bk
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  Backup %s/%s imported: from cluster %s, namespace %s, zones %s, %d volumes, %d objects\n", imported.Namespace, imported.Name,
		imported.Status.Cluster, imported.Status.SourceNamespace, strings.Join(imported.Status.Zones, ", "), len(imported.Status.Volumes), imported.Status.ResourceCount)

	step(fmt.Sprintf("Site B restores the app into namespace %s-dr, zone-a → %s and zone-b → %s", namespace, zones["zone-a"], zones["zone-b"]))
	dr := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "db-dr"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: imported.Name},
			NamespaceMapping: map[string]string{namespace: namespace + "-dr"},
			ZoneMapping:      &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: zones}}}
	if err := restoreAndCompare(ctx, out, b, dr, held, "site A's data"); err != nil {
		return nil, err
	}
	for _, o := range dr.Status.Objects {
		fmt.Fprintf(out, "  %s %s: %s\n", o.Kind, strings.TrimPrefix(o.Namespace+"/"+o.Name, "/"), o.Result)
	}
	if real != nil {
		step("Site B starts the restored application on its real node, placed by the stork scheduler")
		if err := startRestoredApp(ctx, out, b, held); err != nil {
			return nil, err
		}
	}

	step("Break-glass: restore data-0 from the bucket with storkctl alone, as if both clusters were gone")
	tmp, err := os.MkdirTemp(env.Root, "break-glass-")
	if err != nil {
		return nil, err
	}
	passFile := filepath.Join(tmp, "passphrase")
	if err := os.WriteFile(passFile, key.Data["passphrase"], 0o600); err != nil {
		return nil, err
	}
	bins, err := harness.Commands()
	if err != nil {
		return nil, err
	}
	target := filepath.Join(tmp, "data-0")
	storeArgs, err := bk.storkctlArgs(tmp)
	if err != nil {
		return nil, err
	}
	args := append([]string{"repo", "restore", "latest", target, "--tag", "namespace=" + namespace, "--tag", "pvc=data-0",
		"--passphrase-file", passFile}, storeArgs...)
	fmt.Fprintf(out, "  $ storkctl %s\n", strings.Join(args, " "))
	cmdOut, err := exec.CommandContext(ctx, filepath.Join(bins, "storkctl"), args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("storkctl repo restore: %v\n%s", err, cmdOut)
	}
	sum, files, size, err := treeSum(target)
	if err != nil {
		return nil, err
	}
	if sum != held["data-0"] {
		return nil, fmt.Errorf("the break-glass restore of data-0 differs from site A's data")
	}
	fmt.Fprintf(out, "  %d files, %s, sha256 %s — identical to site A's data\n", files, human(size), sum[:16])
	return b, nil
}

// db labels the demo application's objects.
var db = map[string]string{"app": "db"}

// drNamespace is where site B keeps its BackupLocation and the Backups sync imports: Stork's
// namespace, whose locations see the backups of every namespace.
const drNamespace = harness.StorkNamespace

// appObjects are the demo application's Kubernetes objects besides its claims. Site A's nodes
// are simulated, so the Deployment has no replicas there; on site B's real node it is scaled up
// after the restore: the test application (image stork-testapp) prints the sum of each volume.
func appObjects() []client.Object {
	return []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db-config", Labels: db}, Data: map[string]string{"max_connections": "100"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db-auth", Labels: db}, StringData: map[string]string{"password": "demo"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db", Labels: db},
			Spec: corev1.ServiceSpec{Selector: db, Ports: []corev1.ServicePort{{Port: 5432, TargetPort: intstr.FromInt32(5432)}}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db", Labels: db},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: db},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: db}, Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "db", Image: "stork-testapp:dev", Command: []string{"/testapp", "run", "/data-0", "/data-1"},
						VolumeMounts: []corev1.VolumeMount{{Name: "data-0", MountPath: "/data-0"}, {Name: "data-1", MountPath: "/data-1"}}}},
					Volumes: []corev1.Volume{
						{Name: "data-0", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-0"}}},
						{Name: "data-1", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-1"}}}}}}}},
	}
}

// startStork applies deploy/base/manifests' RBAC and runs the controller and an agent per node.
func startStork(ctx context.Context, out io.Writer, c *harness.Cluster) error {
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		return err
	}
	if _, err := c.StartStork(ctx); err != nil {
		return err
	}
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return err
	}
	for _, n := range nodes.Items {
		if _, err := c.StartAgent(ctx, n.Name); err != nil {
			return err
		}
	}
	return printStorageNodes(ctx, out, c.Client)
}

// restoreAndCompare runs a Restore and checks every restored claim's data against want (tree
// sums by source claim).
func restoreAndCompare(ctx context.Context, out io.Writer, c *harness.Cluster, rs *storkv1.Restore, want map[string]string, what string) error {
	if err := c.Client.Create(ctx, rs); err != nil {
		return err
	}
	if err := waitProgress(ctx, out, c, rs, func() (string, storkv1.Progress, bool) {
		p := rs.Status.Phase
		return string(p), rs.Status.Progress, p == storkv1.RestoreCompleted || p == storkv1.RestorePartiallyFailed || p == storkv1.RestoreFailed
	}); err != nil {
		return err
	}
	if rs.Status.Phase != storkv1.RestoreCompleted {
		return fmt.Errorf("restore %s %s: %v", rs.Name, rs.Status.Phase, rs.Status.Conditions)
	}
	for _, v := range rs.Status.Volumes {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: v.TargetNamespace, Name: v.TargetClaim}, pvc); err != nil {
			return err
		}
		pv := &corev1.PersistentVolume{}
		if err := c.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
			return err
		}
		sum, files, size, err := treeSum(pv.Spec.Local.Path)
		if err != nil {
			return err
		}
		if sum != want[v.SourceClaim] {
			return fmt.Errorf("restored claim %s/%s differs from %s", v.TargetNamespace, v.TargetClaim, what)
		}
		fmt.Fprintf(out, "  %s/%s (%s) on %s: %d files, %s, sha256 %s — identical to %s\n",
			v.TargetNamespace, v.TargetClaim, pvc.Status.Phase, v.Node, files, human(size), sum[:16], what)
	}
	return nil
}

// sums hashes each claim's directory.
func sums(dirs map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for claim, dir := range dirs {
		sum, _, _, err := treeSum(dir)
		if err != nil {
			return nil, err
		}
		out[claim] = sum
	}
	return out, nil
}

// waitProgress polls obj until done, printing its phase and bytes when they change.
func waitProgress(ctx context.Context, out io.Writer, c *harness.Cluster, obj client.Object, state func() (string, storkv1.Progress, bool)) error {
	last := ""
	return c.WaitFor(ctx, 3*time.Minute, obj.GetName()+" to finish", func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err
		}
		phase, p, done := state()
		line := fmt.Sprintf("  %s: %s, %s of %s, %d of %d volumes", obj.GetName(), phase, human(p.BytesDone), human(p.BytesTotal), p.ItemsDone, p.ItemsTotal)
		if line != last && phase != "" {
			fmt.Fprintln(out, line)
			last = line
		}
		return done, nil
	})
}

func printStorageNodes(ctx context.Context, out io.Writer, c client.Client) error {
	var list storkv1.StorageNodeList
	if err := c.List(ctx, &list); err != nil {
		return err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  STORAGENODE\tZONE\tHEALTH\tFREE")
	for _, sn := range list.Items {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", sn.Name, sn.Status.Topology.Zone, sn.Status.Health, human(sn.Status.Capacity.FreeBytes))
	}
	return w.Flush()
}

// writeData writes a small database's worth of files, owned by the database's user (the
// images' non-root user, 65532) when the demo can give them away, as on a real node the
// restored application reads them as that user.
func writeData(dir, claim string) error {
	write := func(name string, data []byte, mode os.FileMode) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			return err
		}
		if os.Geteuid() == 0 {
			return os.Chown(p, appUser, appUser)
		}
		return nil
	}
	for i := range 20 {
		if err := write(fmt.Sprintf("table-%02d.dat", i), []byte(strings.Repeat(fmt.Sprintf("%s row %d\n", claim, i), 4000+i*100)), 0o640); err != nil {
			return err
		}
	}
	return write("wal.log", make([]byte, 1<<20), 0o600)
}

// appUser is the user of Stork's images, the test application's among them.
const appUser = 65532

// treeSum hashes the tree under dir as the test application does (internal/treesum).
func treeSum(dir string) (sum string, files int, size int64, err error) {
	t, err := treesum.Of(dir)
	return t.Hex, t.Files, t.Bytes, err
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// storkctlDir is where the demo built storkctl.
func storkctlDir() string {
	dir, err := harness.Commands()
	if err != nil {
		return "bin"
	}
	return dir
}
