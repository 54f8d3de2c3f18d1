package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/repo/repotest"
	"stork.dev/stork/backup/locator"
)

// TestSync imports the backups another cluster wrote into a location, leaves alone the ones this
// cluster made, names around a clash, and deletes imported Backups whose record is gone.
func TestSync(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	rp, url := repotest.New(t, "a long passphrase")
	write := func(name, uid string) {
		t.Helper()
		rec := &catalog.Record{Name: name, Namespace: "shop", UID: uid, Cluster: "site-a", Phase: storkv1.BackupCompleted,
			StartTime: time.Now().Add(-time.Minute), CompletionTime: time.Now(), Zones: []string{"zone-a"},
			Volumes: []storkv1.BackupVolume{{ClaimName: "data", RepositorySnapshotID: "r1", Phase: storkv1.VolumeSucceeded,
				Progress: storkv1.Progress{BytesDone: 10, BytesTotal: 10}}}}
		if _, err := catalog.WriteRecord(ctx, rp, rec); err != nil {
			t.Fatal(err)
		}
	}
	write("nightly-1", "uid-1")
	write("mine", "uid-mine") // made by this cluster: its Backup object exists
	write("clash", "uid-2")   // another Backup here has that name

	loc := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "site-a", UID: "loc-uid"},
		Spec:   storkv1.BackupLocationSpec{URL: url, AccessMode: storkv1.AccessReadOnly, EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "p"}},
		Status: storkv1.BackupLocationStatus{Phase: storkv1.BackupLocationAvailable}}
	key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "key"}, Data: map[string][]byte{"p": []byte("a long passphrase")}}
	mine := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "mine", UID: "uid-mine"}, Spec: storkv1.BackupSpec{BackupLocation: "site-a", SnapshotName: "s"}}
	clash := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "clash", UID: "uid-other"}, Spec: storkv1.BackupSpec{BackupLocation: "other", SnapshotName: "s"}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(loc, key, mine, clash).
		WithStatusSubresource(&storkv1.Backup{}, &storkv1.BackupLocation{}).Build()
	r := &SyncReconciler{Client: c, Repos: &locator.Cache{Secrets: c}, AdminNamespace: "dr"}
	sync := func() {
		t.Helper()
		// The period has passed: forget the last sync.
		l := &storkv1.BackupLocation{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(loc), l); err != nil {
			t.Fatal(err)
		}
		l.Status.LastSyncTime = nil
		if err := c.Status().Update(ctx, l); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(loc)}); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	var list storkv1.BackupList
	if err := c.List(ctx, &list, client.InNamespace("dr")); err != nil {
		t.Fatal(err)
	}
	byName := map[string]storkv1.Backup{}
	for _, b := range list.Items {
		byName[b.Name] = b
	}
	if len(list.Items) != 4 {
		t.Fatalf("Backups after sync: %v", byName)
	}
	imp := byName["nightly-1"]
	if !imp.Status.Imported || imp.Status.Phase != storkv1.BackupCompleted || imp.Status.Cluster != "site-a" || imp.Status.SourceNamespace != "shop" ||
		imp.Spec.DeletionPolicy != storkv1.DeletionRetain || imp.Annotations[SourceUIDAnnotation] != "uid-1" || imp.Annotations[ImportedFromAnnotation] != "site-a" ||
		len(imp.Status.Volumes) != 1 || imp.Status.RecordID == "" || imp.Status.Progress.BytesDone != 10 {
		t.Errorf("imported Backup: %+v %+v", imp.ObjectMeta, imp.Status)
	}
	if c := meta.FindStatusCondition(imp.Status.Conditions, storkv1.ConditionSigned); c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "cluster site-a") {
		t.Errorf("imported Backup's Signed condition %+v, want True naming the writing cluster", c)
	}
	if b, ok := byName["clash-uid-2"]; !ok || b.Annotations[SourceUIDAnnotation] != "uid-2" {
		t.Errorf("the clashing record was not imported under another name: %v", byName)
	}
	if byName["mine"].Status.Imported {
		t.Error("this cluster's own Backup was touched")
	}
	l := &storkv1.BackupLocation{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(loc), l); err != nil || l.Status.Backups != 3 || l.Status.LastSyncTime == nil {
		t.Errorf("location status %+v, %v", l.Status, err)
	}

	// A second sync changes nothing; once the writer deletes nightly-1, its import goes.
	sync()
	if n, err := catalog.Forget(ctx, rp, "uid-1"); err != nil || n != 1 {
		t.Fatalf("forget: %d, %v", n, err)
	}
	sync()
	if err := c.List(ctx, &list, client.InNamespace("dr")); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, b := range list.Items {
		names[b.Name] = true
	}
	if len(list.Items) != 3 || names["nightly-1"] || !names["clash-uid-2"] || !names["mine"] {
		t.Errorf("Backups after the record went: %v", names)
	}

	// A location outside Stork's namespace sees the backups of its own namespace only.
	tenant := loc.DeepCopy()
	tenant.Namespace, tenant.UID, tenant.ResourceVersion = "tenant", "tenant-loc-uid", ""
	tkey := key.DeepCopy()
	tkey.Namespace, tkey.ResourceVersion = "tenant", ""
	for _, o := range []client.Object{tenant, tkey} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(tenant)}); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &list, client.InNamespace("tenant")); err != nil || len(list.Items) != 0 {
		t.Errorf("a tenant's location imported other namespaces' backups: %d, %v", len(list.Items), err)
	}
}
