package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/controllers/locations"
	"stork.dev/stork/internal/harness"
)

// TestDisasterRecovery is the disaster-recovery story across two clusters sharing one MinIO
// bucket: site A runs an application and a schedule that snapshots it and backs it up with its
// Kubernetes objects; its controller is killed in the middle of a run; retention deletes old
// snapshots and backups and a prune frees their data. Site B, in other zones, reads the bucket
// through a ReadOnly location, sees the backups through sync, and restores the application into
// a mapped namespace in a mapped zone: bytes, metadata and objects are checked. Bad requests
// (unknown backup, unmapped zone) end in clear conditions and lose nothing.
func TestDisasterRecovery(t *testing.T) {
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio")
	if err != nil {
		t.Fatal(err)
	}
	a, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "site-a", Nodes: harness.Nodes("a", "region-1", []string{"zone-a"}, 2)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "site-b", Nodes: harness.Nodes("b", "region-2", []string{"zone-b", "zone-c"}, 1)})
	if err != nil {
		t.Fatal(err)
	}
	storks := map[*harness.Cluster]*harness.Process{}
	for _, c := range []*harness.Cluster{a, b} {
		if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
			t.Fatal(err)
		}
		if storks[c], err = c.StartStork(ctx); err != nil {
			t.Fatal(err)
		}
		var nodes corev1.NodeList
		if err := c.Client.List(ctx, &nodes); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			if _, err := c.StartAgent(ctx, n.Name); err != nil {
				t.Fatal(err)
			}
		}
		mustCreate(t, c, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: "kubernetes.io/no-provisioner",
			VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)})
	}
	const passphrase = "the same passphrase at both sites"
	location := func(c *harness.Cluster, ns, name string, mode storkv1.BackupLocationAccessMode) *storkv1.BackupLocation {
		mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "minio"},
			StringData: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": m.SecretKey}})
		mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backup-key"}, StringData: map[string]string{"passphrase": passphrase}})
		loc := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: storkv1.BackupLocationSpec{URL: "s3://" + m.Bucket + "/site-a", AccessMode: mode,
				S3:                     &storkv1.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
				CredentialsSecretRef:   &storkv1.SecretReference{Name: "minio"},
				EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "backup-key", Key: "passphrase"},
				SyncPeriod:             &metav1.Duration{Duration: 10 * time.Second},
				Maintenance:            &storkv1.Maintenance{Interval: &metav1.Duration{Duration: 10 * time.Second}, Grace: &metav1.Duration{}}}}
		mustCreate(t, c, loc)
		return loc
	}

	// Site A: an application with two claims on two nodes of zone-a, and its objects.
	mustCreate(t, a, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "payments"}}})
	db := map[string]string{"app": "db"}
	vol0 := makeLocalVolume(t, a, "shop", "data-0", "a-zone-a-1", db)
	vol1 := makeLocalVolume(t, a, "shop", "data-1", "a-zone-a-2", db)
	writeTree(t, vol0, 11, 2<<20)
	writeTree(t, vol1, 12, 1<<20)
	// Data only the first backups hold: once they are deleted, a prune frees it.
	if err := os.WriteFile(filepath.Join(vol0, "old-segment.bin"), randomBytes(3<<20, 99), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-config", Labels: db}, Data: map[string]string{"max_connections": "100"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-auth", Labels: db}, StringData: map[string]string{"password": "s3cret"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "unrelated"}, Data: map[string]string{"x": "y"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", Labels: db},
			Spec: corev1.ServiceSpec{Selector: db, Ports: []corev1.ServicePort{{Port: 5432, TargetPort: intstr.FromInt32(5432)}}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", Labels: db},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: db},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: db}, Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "db", Image: "postgres:17", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql"}}}},
					Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-0"}}}}}}}},
	} {
		mustCreate(t, a, o)
	}
	location(a, "shop", "minio", "")
	sched := &storkv1.SnapshotSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
		Spec: storkv1.SnapshotScheduleSpec{Schedule: "*/4 * * * * *",
			Retention: storkv1.Retention{KeepLast: 1}, BackupRetention: &storkv1.Retention{KeepLast: 2},
			Template: storkv1.SnapshotTemplate{Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: db}},
				IncludeResources: true, BackupLocation: "minio"}}}}
	mustCreate(t, a, sched)

	scheduleBackups := func() []storkv1.Backup {
		t.Helper()
		var list storkv1.BackupList
		if err := a.Client.List(ctx, &list, client.InNamespace("shop"), client.MatchingLabels{"stork.dev/schedule": "db"}); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	completed := func(list []storkv1.Backup) (n int) {
		for _, bk := range list {
			if bk.Status.Phase == storkv1.BackupCompleted && bk.DeletionTimestamp == nil {
				n++
			}
		}
		return n
	}

	t.Run("the controller killed during a scheduled backup: the run still ends", func(t *testing.T) {
		var victim string
		err := a.WaitFor(ctx, time.Minute, "a scheduled run in progress", func(ctx context.Context) (bool, error) {
			var snaps storkv1.SnapshotList
			if err := a.Client.List(ctx, &snaps, client.InNamespace("shop"), client.MatchingLabels{"stork.dev/schedule": "db"}); err != nil {
				return false, err
			}
			for _, s := range snaps.Items {
				bk := &storkv1.Backup{}
				err := a.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: s.Name}, bk)
				if apierrors.IsNotFound(err) || (err == nil && bk.Status.Phase != storkv1.BackupCompleted) {
					victim = s.Name
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := storks[a].Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if storks[a], err = a.StartStork(ctx); err != nil {
			t.Fatal(err)
		}
		bk := &storkv1.Backup{}
		err = a.WaitFor(ctx, 2*time.Minute, "the interrupted run's Backup to end", func(ctx context.Context) (bool, error) {
			if err := a.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: victim}, bk); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			return bk.Status.Phase == storkv1.BackupCompleted || bk.Status.Phase == storkv1.BackupFailed, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if bk.Status.Phase != storkv1.BackupCompleted || bk.Status.RecordID == "" || bk.Status.ResourceCount < 5 {
			t.Errorf("interrupted run's Backup: %+v", bk.Status)
		}
	})

	t.Run("retention deletes old snapshots and backups, and prune frees their data", func(t *testing.T) {
		// The first backups hold old-segment.bin; the next ones do not.
		if err := a.WaitFor(ctx, time.Minute, "a completed scheduled backup", func(ctx context.Context) (bool, error) {
			return completed(scheduleBackups()) >= 1, nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(vol0, "old-segment.bin")); err != nil {
			t.Fatal(err)
		}
		mark := time.Now()
		err := a.WaitFor(ctx, 2*time.Minute, "two backups made after old-segment.bin was removed", func(ctx context.Context) (bool, error) {
			n := 0
			for _, bk := range scheduleBackups() {
				if bk.Status.Phase == storkv1.BackupCompleted && bk.CreationTimestamp.After(mark.Add(time.Second)) {
					n++
				}
			}
			return n >= 2, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Each backup is of a fresh snapshot copy (new inodes and ctimes) yet read only what
		// changed since the claim's previous backup; the later of the two, with nothing
		// changed, read nothing.
		var after []storkv1.Backup
		for _, bk := range scheduleBackups() {
			if bk.Status.Phase == storkv1.BackupCompleted && bk.CreationTimestamp.After(mark.Add(time.Second)) {
				after = append(after, bk)
			}
		}
		sort.Slice(after, func(i, j int) bool { return after[i].CreationTimestamp.Before(&after[j].CreationTimestamp) })
		for i, bk := range after[:2] {
			for _, v := range bk.Status.Volumes {
				p := v.Progress
				if p.BytesSkipped == 0 || p.BytesSkipped > p.BytesTotal || (i == 1 && p.BytesSkipped != p.BytesTotal) {
					t.Errorf("backup %s, claim %s: %d of %d bytes skipped", bk.Name, v.ClaimName, p.BytesSkipped, p.BytesTotal)
				}
			}
			if bk.Status.Progress.BytesSkipped == 0 {
				t.Errorf("backup %s: progress %+v reports no bytes skipped", bk.Name, bk.Status.Progress)
			}
		}
		if err := a.Client.Patch(ctx, sched, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))); err != nil {
			t.Fatal(err)
		}
		err = a.WaitFor(ctx, time.Minute, "retention to leave 1 snapshot and 2 backups", func(ctx context.Context) (bool, error) {
			var snaps storkv1.SnapshotList
			if err := a.Client.List(ctx, &snaps, client.InNamespace("shop"), client.MatchingLabels{"stork.dev/schedule": "db"}); err != nil {
				return false, err
			}
			// Failed runs (none expected) are kept apart, to show what went wrong.
			usable := 0
			for _, bk := range scheduleBackups() {
				if bk.Status.Phase != storkv1.BackupFailed {
					usable++
				}
			}
			return len(snaps.Items) <= 1 && usable == 2 && completed(scheduleBackups()) == 2, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// A prune runs every 10 s and its status line is overwritten by the next one, which
		// finds nothing more to delete; the Pruned Event, made only by a prune that deleted
		// packs, stays.
		var pruned string
		loc := &storkv1.BackupLocation{}
		err = a.WaitFor(ctx, time.Minute, "a prune that deletes data, and 2 backups in the bucket", func(ctx context.Context) (bool, error) {
			if err := a.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "minio"}, loc); err != nil {
				return false, err
			}
			var evs eventsv1.EventList
			if err := a.Client.List(ctx, &evs, client.InNamespace("shop")); err != nil {
				return false, err
			}
			for _, e := range evs.Items {
				at := e.EventTime.Time
				if e.DeprecatedLastTimestamp.After(at) {
					at = e.DeprecatedLastTimestamp.Time
				}
				if e.Regarding.Kind == "BackupLocation" && e.Regarding.Name == "minio" && e.Reason == locations.EventPruned && at.After(mark) {
					pruned = e.Note
				}
			}
			return pruned != "" && loc.Status.Backups == 2, nil
		})
		if err != nil {
			t.Fatalf("%v; last prune: %q, backups in the bucket: %d", err, loc.Status.LastPruneResult, loc.Status.Backups)
		}
		if !strings.Contains(pruned, "deleted") || strings.Contains(pruned, "deleted 0 packs") {
			t.Errorf("a Pruned Event that reports no deletion: %q", pruned)
		}
	})

	var newest storkv1.Backup
	for _, bk := range scheduleBackups() {
		if bk.Status.Phase == storkv1.BackupCompleted && bk.CreationTimestamp.After(newest.CreationTimestamp.Time) {
			newest = bk
		}
	}
	// What the newest backup holds.
	want0, want1 := t.TempDir()+"/data-0", t.TempDir()+"/data-1"
	copyTree(t, vol0, want0)
	copyTree(t, vol1, want1)

	// The recovery site's location is in Stork's namespace: it sees the backups of every
	// namespace (one in another namespace would see that namespace's only).
	location(b, harness.StorkNamespace, "site-a", storkv1.AccessReadOnly)
	var imported storkv1.Backup
	t.Run("site B sees site A's backups through sync", func(t *testing.T) {
		err := b.WaitFor(ctx, time.Minute, "site A's backups in site B", func(ctx context.Context) (bool, error) {
			var list storkv1.BackupList
			if err := b.Client.List(ctx, &list, client.InNamespace(harness.StorkNamespace)); err != nil {
				return false, err
			}
			complete := 0
			for _, bk := range list.Items {
				// Sync creates the Backup, then writes its status.
				if bk.Status.RecordID == "" {
					continue
				}
				complete++
				if bk.Annotations["stork.dev/source-uid"] == string(newest.UID) {
					imported = bk
				}
			}
			return len(list.Items) == 2 && complete == 2 && imported.Name != "", nil
		})
		if err != nil {
			t.Fatal(err)
		}
		st := imported.Status
		if !st.Imported || st.Phase != storkv1.BackupCompleted || st.Cluster != "site-a" || st.SourceNamespace != "shop" || len(st.Volumes) != 2 ||
			st.ResourcesSnapshotID != newest.Status.ResourcesSnapshotID || imported.Spec.DeletionPolicy != storkv1.DeletionRetain ||
			strings.Join(st.Zones, ",") != "zone-a" {
			t.Errorf("imported Backup %s: spec %+v status %+v", imported.Name, imported.Spec, st)
		}
		if c := meta.FindStatusCondition(st.Conditions, storkv1.ConditionSigned); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("imported Backup %s: condition Signed %+v, want True (site A signed its record)", imported.Name, c)
		}
	})

	t.Run("site B restores the application into a mapped namespace and zone", func(t *testing.T) {
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "shop-dr"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: imported.Name}, Verify: true,
				NamespaceMapping: map[string]string{"shop": "shop-dr"},
				ZoneMapping:      &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: map[string]string{"zone-a": "zone-c"}}}}
		mustCreate(t, b, rs)
		waitRestore(t, b, rs, storkv1.RestoreCompleted)
		for _, v := range rs.Status.Volumes {
			if v.Node != "b-zone-c-1" || v.Zone != "zone-c" || v.TargetNamespace != "shop-dr" {
				t.Errorf("volume %+v: want it on b-zone-c-1 in shop-dr", v)
			}
			if v.Verification == nil || v.Verification.Files == 0 || v.Verification.Bytes != v.Progress.BytesTotal {
				t.Errorf("volume %s: verification %+v, want every file and byte (%d) verified", v.SourceClaim, v.Verification, v.Progress.BytesTotal)
			}
			pvc := &corev1.PersistentVolumeClaim{}
			if err := b.Client.Get(ctx, client.ObjectKey{Namespace: "shop-dr", Name: v.TargetClaim}, pvc); err != nil {
				t.Fatal(err)
			}
			pv := &corev1.PersistentVolume{}
			if err := b.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
				t.Fatal(err)
			}
			if pvc.Status.Phase != corev1.ClaimBound || !strings.HasPrefix(pv.Spec.Local.Path, b.NodeRoot("b-zone-c-1")) || pvc.Labels["app"] != "db" {
				t.Errorf("claim %s is %s on %s, labels %v (want the source's app=db)", pvc.Name, pvc.Status.Phase, pv.Spec.Local.Path, pvc.Labels)
			}
			compareTrees(t, map[string]string{"data-0": want0, "data-1": want1}[v.SourceClaim], pv.Spec.Local.Path)
		}
		results := map[string]string{}
		for _, o := range rs.Status.Objects {
			results[o.Kind+"/"+o.Name] = o.Result
			if o.Namespace != "shop-dr" && o.Kind != "Namespace" {
				t.Errorf("object %+v restored outside shop-dr", o)
			}
		}
		for _, k := range []string{"Namespace/shop-dr", "ConfigMap/db-config", "Secret/db-auth", "Service/db", "Deployment/db"} {
			if results[k] != "Created" {
				t.Errorf("%s: %q, want Created (all: %v)", k, results[k], results)
			}
		}
		if _, ok := results["ConfigMap/unrelated"]; ok {
			t.Error("a ConfigMap outside the Snapshot's selector was restored")
		}
		ns := &corev1.Namespace{}
		sec := &corev1.Secret{}
		svc := &corev1.Service{}
		dep := &appsv1.Deployment{}
		for key, obj := range map[string]client.Object{"shop-dr": ns, "shop-dr/db-auth": sec, "shop-dr/db": svc} {
			nsName, name, _ := strings.Cut(key, "/")
			k := client.ObjectKey{Namespace: nsName, Name: name}
			if name == "" {
				k = client.ObjectKey{Name: nsName}
			}
			if err := b.Client.Get(ctx, k, obj); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Client.Get(ctx, client.ObjectKey{Namespace: "shop-dr", Name: "db"}, dep); err != nil {
			t.Fatal(err)
		}
		if ns.Labels["team"] != "payments" || string(sec.Data["password"]) != "s3cret" || svc.Spec.ClusterIP == "" ||
			dep.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-0" {
			t.Errorf("restored objects: namespace labels %v, secret %v, service IP %q, deployment volumes %+v",
				ns.Labels, sec.Data, svc.Spec.ClusterIP, dep.Spec.Template.Spec.Volumes)
		}
	})

	t.Run("bad restores end in clear conditions and lose nothing", func(t *testing.T) {
		cases := []struct {
			name, backup string
			zones        map[string]string
			reason       string
		}{
			{"unknown-backup", "no-such-backup", nil, "BackupNotFound"},
			{"unmapped-zone", imported.Name, map[string]string{"zone-x": "zone-b"}, "RestoreFailed"},
		}
		for _, tc := range cases {
			rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: tc.name},
				Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: tc.backup},
					NamespaceMapping: map[string]string{"shop": tc.name}}}
			if tc.zones != nil {
				rs.Spec.ZoneMapping = &storkv1.ZoneMapping{Mode: storkv1.ZoneMap, Zones: tc.zones}
			}
			mustCreate(t, b, rs)
			waitRestore(t, b, rs, storkv1.RestoreFailed)
			msg := fmt.Sprint(rs.Status.Conditions)
			if !strings.Contains(msg, tc.reason) {
				t.Errorf("%s: conditions %s, want reason %s", tc.name, msg, tc.reason)
			}
			if tc.zones != nil {
				for _, v := range rs.Status.Volumes {
					if v.Reason != "ZoneNotMapped" || !strings.Contains(v.Message, `"zone-a"`) {
						t.Errorf("%s: volume %+v", tc.name, v)
					}
				}
				if len(rs.Status.Objects) != 0 {
					t.Errorf("%s: objects were restored although no volume could be: %+v", tc.name, rs.Status.Objects)
				}
			}
		}
		// The imported Backup's status changed to point a volume at the other volume's data: the
		// restore compares it with the signed record in the bucket and refuses, naming the field.
		bk := &storkv1.Backup{}
		if err := b.Client.Get(ctx, client.ObjectKeyFromObject(&imported), bk); err != nil {
			t.Fatal(err)
		}
		orig := bk.DeepCopy()
		vs := bk.Status.Volumes
		vs[0].RepositorySnapshotID, vs[1].RepositorySnapshotID = vs[1].RepositorySnapshotID, vs[0].RepositorySnapshotID
		if err := b.Client.Status().Patch(ctx, bk, client.MergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
		rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: harness.StorkNamespace, Name: "altered-status"},
			Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{BackupName: imported.Name}, NamespaceMapping: map[string]string{"shop": "altered"}}}
		mustCreate(t, b, rs)
		waitRestore(t, b, rs, storkv1.RestoreFailed)
		if c := meta.FindStatusCondition(rs.Status.Conditions, storkv1.ConditionValid); c == nil || c.Reason != "RecordMismatch" ||
			!strings.Contains(c.Message, "status.volumes["+vs[0].ClaimName+"].repositorySnapshotID") || len(rs.Status.Objects) != 0 {
			t.Errorf("restore of the altered Backup: conditions %+v, objects %v; want RecordMismatch naming the volume, nothing restored", rs.Status.Conditions, rs.Status.Objects)
		}
		altered := bk.DeepCopy()
		bk.Status.Volumes = orig.Status.Volumes
		if err := b.Client.Status().Patch(ctx, bk, client.MergeFrom(altered)); err != nil {
			t.Fatal(err)
		}

		// Nothing was lost: the backup is still there and whole.
		bk = &storkv1.Backup{}
		if err := b.Client.Get(ctx, client.ObjectKeyFromObject(&imported), bk); err != nil || bk.Status.Phase != storkv1.BackupCompleted {
			t.Errorf("imported backup after the failed restores: %v %+v", err, bk.Status)
		}
	})
}

// randomBytes returns n bytes that no other test data shares.
func randomBytes(n int, seed uint64) []byte {
	out := make([]byte, n)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = byte(x)
	}
	return out
}
