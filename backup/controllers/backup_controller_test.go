package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/catalog/catalogtest"
	"stork.dev/stork/backup/engine/repo/repotest"
	"stork.dev/stork/backup/locator"
	"stork.dev/stork/drivers"
	fakedriver "stork.dev/stork/drivers/fake"
	"stork.dev/stork/internal/retry"
)

func TestBackupReconciler(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	rp, url := repotest.New(t, "a long passphrase")
	location := func(phase storkv1.BackupLocationPhase, mode storkv1.BackupLocationAccessMode) *storkv1.BackupLocation {
		return &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc", UID: "loc-uid"},
			Spec: storkv1.BackupLocationSpec{URL: url, AccessMode: mode,
				EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"}},
			Status: storkv1.BackupLocationStatus{Phase: phase}}
	}
	cases := []struct {
		name     string
		snapshot string
		loc      *storkv1.BackupLocation
		phase    storkv1.BackupPhase // "" = still waiting
		reason   string
	}{
		{"copied", "snap", location(storkv1.BackupLocationAvailable, ""), storkv1.BackupCompleted, "Completed"},
		{"unknown snapshot", "nope", location(storkv1.BackupLocationAvailable, ""), storkv1.BackupFailed, "SnapshotNotFound"},
		{"read-only location", "snap", location(storkv1.BackupLocationAvailable, storkv1.AccessReadOnly), storkv1.BackupFailed, "LocationReadOnly"},
		{"location not available yet", "snap", location(storkv1.BackupLocationUnavailable, ""), "", "WaitingForLocation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, b, drv := backupCase(t, s, tc.snapshot, tc.loc)
			// Whoever sees the Backup finished never sees its credentials still there: the
			// Secret is gone before the final phase is written.
			checked := interceptor.NewClient(c, interceptor.Funcs{SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
				if bk, ok := obj.(*storkv1.Backup); ok && finalBackup(bk.Status.Phase) {
					if err := cl.Get(ctx, client.ObjectKey{Namespace: "stork-system", Name: "stork-access-backup-uid"}, &corev1.Secret{}); err == nil {
						t.Errorf("Backup written %s while its access Secret exists", bk.Status.Phase)
					}
				}
				return cl.SubResource(sub).Patch(ctx, obj, p, o...)
			}})
			r := &BackupReconciler{Client: checked, Reader: c, Repos: &locator.Cache{Secrets: c}, Drivers: drivers.NewSet(drv), Namespace: "stork-system", Cluster: "c1"}
			accessSeen := false
			for range 10 {
				if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)}); err != nil {
					t.Fatal(err)
				}
				sec := &corev1.Secret{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: "stork-system", Name: "stork-access-backup-uid"}, sec); err == nil {
					accessSeen = true
					if a, err := access.ParseSecret(sec.Data); err != nil || a.Store.URL != url || a.Key.Passphrase != "a long passphrase" {
						t.Errorf("access Secret %+v, %v", a, err)
					}
				}
			}
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				t.Fatal(err)
			}
			if b.Status.Phase != tc.phase && !(tc.phase == "" && b.Status.Phase == storkv1.BackupPending) {
				t.Fatalf("phase %q, want %q: %+v", b.Status.Phase, tc.phase, b.Status)
			}
			cond := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionProgressing)
			if tc.phase != "" {
				cond = meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionReady)
			}
			if cond == nil || cond.Reason != tc.reason {
				t.Errorf("condition %+v, want reason %s", cond, tc.reason)
			}
			if tc.phase == storkv1.BackupCompleted {
				if !accessSeen || b.Status.Volumes[0].RepositorySnapshotID == "" || b.Status.Cluster != "c1" || !strings.Contains(cond.Message, "1 volumes copied") {
					t.Errorf("completed backup: access Secret seen %v, status %+v", accessSeen, b.Status)
				}
				if err := c.Get(ctx, client.ObjectKey{Namespace: "stork-system", Name: "stork-access-backup-uid"}, &corev1.Secret{}); err == nil {
					t.Error("the access Secret outlived the backup")
				}
				// The record makes the backup visible to other clusters, with what a restore needs.
				if err := rp.RefreshIndex(ctx); err != nil {
					t.Fatal(err)
				}
				recs, err := catalog.Records(ctx, rp)
				if err != nil || len(recs) != 1 || recs[0].ID.String() != b.Status.RecordID {
					t.Fatalf("records %v (%v), status.recordID %s", recs, err, b.Status.RecordID)
				}
				rec, err := catalog.ReadRecord(ctx, rp, recs[0].ID)
				if err != nil || rec.UID != "backup-uid" || rec.Cluster != "c1" || rec.Phase != storkv1.BackupCompleted ||
					len(rec.Volumes) != 1 || rec.Volumes[0].RepositorySnapshotID != b.Status.Volumes[0].RepositorySnapshotID {
					t.Fatalf("record %+v, %v", rec, err)
				}
				// Deleting it (policy Delete, the default) forgets its snapshots in the repository.
				if !controllerutil.ContainsFinalizer(b, BackupFinalizer) {
					t.Fatalf("finalizers %v", b.Finalizers)
				}
				if err := c.Delete(ctx, b); err != nil {
					t.Fatal(err)
				}
				if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)}); err != nil {
					t.Fatal(err)
				}
				if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); !apierrors.IsNotFound(err) {
					t.Errorf("the deleted Backup is still there: %v %v", err, b.Finalizers)
				}
				if recs, err := catalog.Records(ctx, rp); err != nil || len(recs) != 0 {
					t.Errorf("records after delete: %v, %v", recs, err)
				}
			}
		})
	}
}

// backupCase is a namespace "app" with a Ready Snapshot "snap" of one volume of the fake driver,
// the location, its key Secret, and a Backup "b" of the named snapshot into the location.
func backupCase(t *testing.T, s *runtime.Scheme, snapshot string, loc *storkv1.BackupLocation) (client.WithWatch, *storkv1.Backup, *fakedriver.Driver) {
	t.Helper()
	ctx := context.Background()
	drv := fakedriver.New(2) // work takes two calls: snapshot twice to have one, export twice
	vols := []drivers.Volume{{PV: fakedriver.PV("pv-a", 1<<20)}}
	if _, err := drv.Snapshot(ctx, drivers.SnapshotRequest{ID: "s", Volumes: vols}); err != nil {
		t.Fatal(err)
	}
	st, _ := drv.Snapshot(ctx, drivers.SnapshotRequest{ID: "s", Volumes: vols})
	snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "snap"}, Status: storkv1.SnapshotStatus{Phase: storkv1.SnapshotReady,
		Volumes: []storkv1.SnapshotVolumeStatus{{ClaimName: "a", VolumeName: "pv-a", Driver: fakedriver.Name, SnapshotID: st[0].SnapshotID, Phase: storkv1.VolumeSucceeded}}}}
	b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "b", UID: "backup-uid"},
		Spec: storkv1.BackupSpec{SnapshotName: snapshot, BackupLocation: "loc"}}
	key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "key"}, Data: map[string][]byte{"passphrase": []byte("a long passphrase")}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(snap, b, loc, key, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}).WithStatusSubresource(b).Build()
	return c, b, drv
}

// refusedRecordCase is backupCase on an in-memory catalog that refuses to write records.
func refusedRecordCase(t *testing.T) (client.WithWatch, *storkv1.Backup, *fakedriver.Driver, *catalogtest.Memory) {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	loc := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc", UID: "loc-uid"},
		Spec:   storkv1.BackupLocationSpec{URL: "file:///never/opened", EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"}},
		Status: storkv1.BackupLocationStatus{Phase: storkv1.BackupLocationAvailable}}
	c, b, drv := backupCase(t, s, "snap", loc)
	cat := catalogtest.New()
	cat.Fail("WriteRecord", errors.New("the bucket refuses writes"))
	return c, b, drv, cat
}

// TestBackupRecordRefused runs the Backup controller on an in-memory catalog (no bucket): while
// the repository refuses the record, the Backup is not Completed and says why; once the record
// is written, it is, and exactly one record exists.
func TestBackupRecordRefused(t *testing.T) {
	ctx := context.Background()
	c, b, drv, cat := refusedRecordCase(t)
	r := &BackupReconciler{Client: c, Reader: c, Repos: cat, Drivers: drivers.NewSet(drv), Namespace: "stork-system", Cluster: "c1",
		Retry: retry.Policy{Base: 10 * time.Millisecond, Max: 10 * time.Millisecond}}
	reconcile := func() error {
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)})
		time.Sleep(res.RequeueAfter) // the backoff: nothing is tried before it ends
		if gerr := c.Get(ctx, client.ObjectKeyFromObject(b), b); gerr != nil {
			t.Fatal(gerr)
		}
		return err
	}
	for range 10 {
		if err := reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if b.Status.Phase == storkv1.BackupCompleted || b.Status.RecordID != "" {
		t.Fatalf("completed without a record: %+v", b.Status)
	}
	if cond := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionProgressing); cond == nil ||
		cond.Reason != "SavingRecord" || !strings.Contains(cond.Message, "refuses writes") {
		t.Fatalf("Progressing %+v, want SavingRecord with the catalog's error", cond)
	}
	if b.Status.Volumes[0].RepositorySnapshotID == "" {
		t.Fatalf("the volume's copy is not recorded: %+v", b.Status.Volumes)
	}
	cat.Fail("WriteRecord", nil)
	for range 3 {
		if err := reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	recs, _ := cat.Records(ctx)
	if b.Status.Phase != storkv1.BackupCompleted || len(recs) != 1 || recs[0].ID.String() != b.Status.RecordID {
		t.Fatalf("phase %s, records %v, status.recordID %s", b.Status.Phase, recs, b.Status.RecordID)
	}
	if rec, err := cat.ReadRecord(ctx, recs[0].ID); err != nil || rec.UID != "backup-uid" || rec.Phase != storkv1.BackupCompleted {
		t.Fatalf("record %+v, %v", rec, err)
	}
}

// TestBackupGivesUp: a record the repository keeps refusing is retried with backoff, visibly
// (status.retry), until the retry limit; then the Backup fails saying what failed and how often.
func TestBackupGivesUp(t *testing.T) {
	ctx := context.Background()
	c, b, drv, cat := refusedRecordCase(t)
	r := &BackupReconciler{Client: c, Reader: c, Repos: cat, Drivers: drivers.NewSet(drv), Namespace: "stork-system", Cluster: "c1",
		// Seconds, not less: status times are whole seconds.
		Retry: retry.Policy{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond, Limit: 2 * time.Second}}
	sawRetry := false
	for range 200 {
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			t.Fatal(err)
		}
		if rt := b.Status.Retry; rt != nil && rt.Reason == "SavingRecord" && rt.Attempts > 0 && strings.Contains(rt.Message, "refuses writes") {
			sawRetry = true
		}
		if b.Status.Phase == storkv1.BackupFailed {
			break
		}
		time.Sleep(res.RequeueAfter)
	}
	cond := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionReady)
	if !sawRetry || b.Status.Phase != storkv1.BackupFailed || cond == nil || cond.Reason != "RecordFailed" ||
		!strings.Contains(cond.Message, "SavingRecord failed") || !strings.Contains(cond.Message, "refuses writes") {
		t.Fatalf("saw status.retry %v; phase %s, Ready %+v: want Failed RecordFailed saying how often it tried", sawRetry, b.Status.Phase, cond)
	}
}

// TestBackupRetryWaitsForItsBackoff: the status write of a failed attempt wakes the controller
// up again at once; that wake-up, and any other before the backoff ends, tries nothing.
func TestBackupRetryWaitsForItsBackoff(t *testing.T) {
	ctx := context.Background()
	c, b, drv, cat := refusedRecordCase(t)
	r := &BackupReconciler{Client: c, Reader: c, Repos: cat, Drivers: drivers.NewSet(drv), Namespace: "stork-system", Cluster: "c1",
		Retry: retry.Policy{Base: 10 * time.Second, Max: time.Minute, Limit: time.Hour}}
	key := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)}
	for b.Status.Retry == nil {
		if _, err := r.Reconcile(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, key.NamespacedName, b); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		res, err := r.Reconcile(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter < 8*time.Second || res.RequeueAfter > 10*time.Second {
			t.Errorf("a reconcile within the backoff asks to come back after %s, want the rest of the 10s", res.RequeueAfter)
		}
	}
	if err := c.Get(ctx, key.NamespacedName, b); err != nil {
		t.Fatal(err)
	}
	if b.Status.Retry.Attempts != 1 {
		t.Errorf("attempts %d after reconciles within the backoff, want 1", b.Status.Retry.Attempts)
	}
}

// A Backup deleted while copying records Cancelled (phase, Ready condition, Event), deletes the
// upload tasks it owns so that the agents stop them, waits CancelGrace, then forgets what was
// written and goes.
func TestBackupCancelled(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	_, url := repotest.New(t, "a long passphrase")
	loc := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc", UID: "loc-uid"},
		Spec:   storkv1.BackupLocationSpec{URL: url, EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"}},
		Status: storkv1.BackupLocationStatus{Phase: storkv1.BackupLocationAvailable}}
	c, b, drv := backupCase(t, s, "snap", loc)
	rec := events.NewFakeRecorder(20)
	r := &BackupReconciler{Client: c, Reader: c, Repos: &locator.Cache{Secrets: c}, Drivers: drivers.NewSet(drv), Namespace: "stork-system", Cluster: "c1",
		Recorder: rec, CancelGrace: time.Hour}
	key := client.ObjectKeyFromObject(b)
	reconcile := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	for b.Status.Phase != storkv1.BackupInProgress {
		reconcile()
		if err := c.Get(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	// The upload the driver would have made, owned by the Backup, and another Backup's.
	for _, owner := range []*storkv1.Backup{b, {ObjectMeta: metav1.ObjectMeta{Name: "other", UID: "other-uid"}}} {
		task := &storkv1.VolumeTask{ObjectMeta: metav1.ObjectMeta{Namespace: "stork-system", Name: "upload-" + owner.Name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: storkv1.GroupVersion.String(), Kind: "Backup", Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}}},
			Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskUpload}}
		if err := c.Create(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	reconcile()
	reconcile()
	if err := c.Get(ctx, key, b); err != nil {
		t.Fatal(err)
	}
	if cond := meta.FindStatusCondition(b.Status.Conditions, storkv1.ConditionReady); b.Status.Phase != storkv1.BackupCancelled || cond == nil || cond.Reason != "Cancelled" {
		t.Fatalf("phase %s, Ready %+v: want Cancelled", b.Status.Phase, cond)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "stork-system", Name: "upload-b"}, &storkv1.VolumeTask{}); !apierrors.IsNotFound(err) {
		t.Errorf("the cancelled Backup's upload task is still there (%v)", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "stork-system", Name: "upload-other"}, &storkv1.VolumeTask{}); err != nil {
		t.Errorf("another Backup's task was deleted: %v", err)
	}
	if ev := <-rec.Events; !strings.HasPrefix(ev, "Warning Cancelled") {
		t.Errorf("event %q", ev)
	}
	// Once the grace is over, it goes.
	r.CancelGrace = time.Nanosecond
	reconcile()
	if err := c.Get(ctx, key, b); !apierrors.IsNotFound(err) {
		t.Errorf("cancelled Backup still there after the grace (%v): phase %s", err, b.Status.Phase)
	}
}

// TestCommonReason: a Backup whose volumes all failed for one reason says that reason; mixed or
// missing reasons say Failed.
func TestCommonReason(t *testing.T) {
	vol := func(reason string) storkv1.BackupVolume {
		return storkv1.BackupVolume{Phase: storkv1.VolumeFailed, Reason: reason}
	}
	for _, tc := range []struct {
		name string
		vols []storkv1.BackupVolume
		want string
	}{
		{"one reason", []storkv1.BackupVolume{vol("UploadFailed"), vol("UploadFailed")}, "UploadFailed"},
		{"two reasons", []storkv1.BackupVolume{vol("UploadFailed"), vol("DriverUnavailable")}, "Failed"},
		{"a reason missing", []storkv1.BackupVolume{vol("UploadFailed"), vol("")}, "Failed"},
		{"no volumes", nil, "Failed"},
	} {
		if got := commonReason(tc.vols, "Failed"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
