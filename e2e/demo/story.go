package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/e2e/harness"
)

// storkStory runs Stork on the cluster — the controller and one agent per node, under the RBAC
// of deploy/manifests — and shows a group snapshot of an application's data, its restore into
// another namespace with the data compared, and a schedule with retention.
func storkStory(ctx context.Context, out io.Writer, step func(string), c *harness.Cluster, zones []string, bucket string) error {
	step("Starting Stork: the controller, and a stork-agent per node with its own storage root")
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		return err
	}
	if _, err := c.StartStork(ctx); err != nil {
		return err
	}
	var nodes []string
	for _, z := range zones {
		nodes = append(nodes, "node-"+z+"-1", "node-"+z+"-2")
	}
	for _, n := range nodes {
		if _, err := c.StartAgent(ctx, n); err != nil {
			return err
		}
	}
	if err := printStorageNodes(ctx, out, c.Client); err != nil {
		return err
	}

	loc := &storkv1.BackupLocation{}
	if err := c.WaitFor(ctx, time.Minute, "the BackupLocation to be checked", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "local"}, loc)
		return err == nil && loc.Status.Phase != "", err
	}); err != nil {
		return err
	}
	cond := meta.FindStatusCondition(loc.Status.Conditions, storkv1.ConditionAvailable)
	fmt.Fprintf(out, "  BackupLocation local: %s (%s) — repository %s initialised\n", loc.Status.Phase, cond.Reason, loc.Status.RepositoryID)

	step("A database writes its data: two claims, on nodes in zone-a and zone-b")
	dbNodes := map[string]string{"data-0": "node-zone-a-1", "data-1": "node-zone-b-1"}
	dirs := map[string]string{}
	for _, claim := range []string{"data-0", "data-1"} {
		dir, err := c.LocalVolume(ctx, namespace, claim, dbNodes[claim], map[string]string{"app": "db"})
		if err != nil {
			return err
		}
		if err := writeData(dir, claim); err != nil {
			return err
		}
		dirs[claim] = dir
		sum, files, size, err := treeSum(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s on %s: %d files, %s, sha256 %s\n", claim, dbNodes[claim], files, human(size), sum[:16])
	}

	step("Snapshot db-snap: both claims of app=db, as one group")
	snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db-snap"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}}
	if err := c.Client.Create(ctx, snap); err != nil {
		return err
	}
	if err := waitProgress(ctx, out, c, snap, func() (string, storkv1.Progress, bool) {
		return string(snap.Status.Phase), snap.Status.Progress, snap.Status.Phase == storkv1.SnapshotReady || snap.Status.Phase == storkv1.SnapshotFailed
	}); err != nil {
		return err
	}
	if snap.Status.Phase != storkv1.SnapshotReady {
		return fmt.Errorf("snapshot db-snap %s: %v", snap.Status.Phase, snap.Status.Conditions)
	}
	for _, v := range snap.Status.Volumes {
		fmt.Fprintf(out, "  %s: captured on %s (%s), %s\n", v.ClaimName, v.Node, v.Topology.Zone, human(v.SizeBytes))
	}

	before := map[string]string{}
	for claim, dir := range dirs {
		sum, _, _, err := treeSum(dir)
		if err != nil {
			return err
		}
		before[claim] = sum
		// The application goes on writing after the snapshot.
		if err := os.WriteFile(filepath.Join(dir, "after-snapshot.log"), []byte("written later\n"), 0o644); err != nil {
			return err
		}
	}

	step("Restore db-snap into namespace stork-demo-copy (an administrator's Restore, in stork-system)")
	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "db-copy"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{Namespace: namespace, SnapshotName: "db-snap"},
			NamespaceMapping: map[string]string{namespace: namespace + "-copy"}}}
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
		return fmt.Errorf("restore db-copy %s: %v", rs.Status.Phase, rs.Status.Conditions)
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
		verdict := "identical to the snapshot"
		if sum != before[v.SourceClaim] {
			verdict = "DIFFERENT from the snapshot"
		}
		fmt.Fprintf(out, "  %s/%s (%s) on %s: %d files, %s, sha256 %s — %s\n", v.TargetNamespace, v.TargetClaim, pvc.Status.Phase, v.Node, files, human(size), sum[:16], verdict)
		if sum != before[v.SourceClaim] {
			return fmt.Errorf("restored claim %s differs from the snapshot", v.TargetClaim)
		}
	}

	step("Backup db-snap into the file:// BackupLocation (deduplicated, compressed, encrypted, by the agents)")
	b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db-snap"},
		Spec: storkv1.BackupSpec{SnapshotName: "db-snap", BackupLocation: "local"}}
	if err := c.Client.Create(ctx, b); err != nil {
		return err
	}
	if err := waitProgress(ctx, out, c, b, func() (string, storkv1.Progress, bool) {
		p := b.Status.Phase
		return string(p), b.Status.Progress, p == storkv1.BackupCompleted || p == storkv1.BackupPartiallyFailed || p == storkv1.BackupFailed
	}); err != nil {
		return err
	}
	if b.Status.Phase != storkv1.BackupCompleted {
		return fmt.Errorf("backup db-snap %s: %v", b.Status.Phase, b.Status.Conditions)
	}
	for _, v := range b.Status.Volumes {
		fmt.Fprintf(out, "  %s (zone %s) → repository snapshot %s\n", v.ClaimName, v.Topology.Zone, v.RepositorySnapshotID[:12])
	}

	step("Break-glass: restore data-0 from the bucket with storkctl alone, as if the cluster were gone")
	key := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "stork-demo-key"}, key); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(bucket), "break-glass-")
	if err != nil {
		return err
	}
	passFile := filepath.Join(tmp, "passphrase")
	if err := os.WriteFile(passFile, key.Data["passphrase"], 0o600); err != nil {
		return err
	}
	bins, err := harness.Commands()
	if err != nil {
		return err
	}
	target := filepath.Join(tmp, "data-0")
	args := []string{"repo", "restore", "latest", target, "--tag", "namespace=" + namespace, "--tag", "pvc=data-0",
		"--location", "file://" + bucket, "--passphrase-file", passFile}
	fmt.Fprintf(out, "  $ storkctl %s\n", strings.Join(args, " "))
	cmdOut, err := exec.CommandContext(ctx, filepath.Join(bins, "storkctl"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("storkctl repo restore: %v\n%s", err, cmdOut)
	}
	sum, files, size, err := treeSum(target)
	if err != nil {
		return err
	}
	verdict := "identical to the snapshot"
	if sum != before["data-0"] {
		return fmt.Errorf("the break-glass restore of data-0 differs from the snapshot")
	}
	fmt.Fprintf(out, "  %d files, %s, sha256 %s — %s\n", files, human(size), sum[:16], verdict)

	step("A SnapshotSchedule every 5 seconds, keeping the newest 2")
	sched := &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db-every-5s"},
		Spec: storkv1.SnapshotScheduleSpec{Schedule: "*/5 * * * * *", Retention: storkv1.Retention{KeepLast: 2},
			Template: storkv1.SnapshotTemplate{Spec: snap.Spec}}}
	if err := c.Client.Create(ctx, sched); err != nil {
		return err
	}
	if err := c.WaitFor(ctx, 2*time.Minute, "three runs of the schedule", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(sched), sched)
		ready := 0
		for _, h := range sched.Status.History {
			if h.Phase == string(storkv1.SnapshotReady) {
				ready++
			}
		}
		return err == nil && ready >= 3, err
	}); err != nil {
		return err
	}
	if err := c.Client.Patch(ctx, sched, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))); err != nil {
		return err
	}
	var kept storkv1.SnapshotList
	if err := c.Client.List(ctx, &kept, client.InNamespace(namespace), client.MatchingLabels{"stork.dev/schedule": sched.Name}); err != nil {
		return err
	}
	for _, h := range sched.Status.History {
		fmt.Fprintf(out, "  run %s → %s %s\n", h.ScheduledTime.UTC().Format("15:04:05"), h.SnapshotName, h.Phase)
	}
	alive := 0
	for _, s := range kept.Items {
		if s.DeletionTimestamp == nil {
			alive++
		}
	}
	fmt.Fprintf(out, "  %d snapshots of the schedule remain (retention keepLast 2 deleted the older ones and their data); schedule suspended\n", alive)
	return nil
}

// waitProgress polls obj until done, printing its phase and bytes when they change.
func waitProgress(ctx context.Context, out io.Writer, c *harness.Cluster, obj client.Object, state func() (string, storkv1.Progress, bool)) error {
	last := ""
	return c.WaitFor(ctx, 2*time.Minute, obj.GetName()+" to finish", func(ctx context.Context) (bool, error) {
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

// writeData writes a small database's worth of files.
func writeData(dir, claim string) error {
	for i := range 20 {
		name := filepath.Join(dir, fmt.Sprintf("table-%02d.dat", i))
		if err := os.WriteFile(name, []byte(strings.Repeat(fmt.Sprintf("%s row %d\n", claim, i), 4000+i*100)), 0o640); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "wal.log"), make([]byte, 1<<20), 0o600)
}

// treeSum hashes every file's relative path and content under dir.
func treeSum(dir string) (sum string, files int, size int64, err error) {
	h := sha256.New()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", rel, len(data))
		h.Write(data)
		files++
		size += int64(len(data))
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), files, size, err
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
