package restore

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	fakedriver "stork.dev/stork/drivers/fake"
)

// sourceRestorer is the fake driver with a Restore like the csi driver's: it makes no
// PersistentVolume and answers, at once, with a VolumeSnapshot to provision the claim from.
type sourceRestorer struct {
	*fakedriver.Driver
	source    *corev1.TypedLocalObjectReference
	sizeBytes int64 // of the snapshot
}

var _ drivers.Restorer = (*sourceRestorer)(nil)

func (d *sourceRestorer) Restore(_ context.Context, _ drivers.RestoreRequest) (drivers.VolumeStatus, error) {
	return drivers.VolumeStatus{Phase: storkv1.VolumeSucceeded, SizeBytes: d.sizeBytes, DataSource: d.source.DeepCopy(),
		Progress: storkv1.Progress{BytesDone: d.sizeBytes, BytesTotal: d.sizeBytes}}, nil
}

func volumeSnapshotSource(name string) *corev1.TypedLocalObjectReference {
	return &corev1.TypedLocalObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: name}
}

// dataSourceRestore is a Restore of claim "a" of Snapshot app/snap (a volume of the given
// capacity in class "cls", whose snapshot has snapSize bytes), by a driver that answers with
// the VolumeSnapshot snap-a, with the objects given besides.
type dataSourceRestore struct {
	t   *testing.T
	c   client.Client
	r   *Reconciler
	key client.ObjectKey
}

func newDataSourceRestore(t *testing.T, capacity resource.Quantity, snapSize int64, objs ...client.Object) *dataSourceRestore {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "snap"},
		Status: storkv1.SnapshotStatus{Phase: storkv1.SnapshotReady, Volumes: []storkv1.SnapshotVolumeStatus{{
			ClaimName: "a", VolumeName: "pv-a", Driver: fakedriver.Name, SnapshotID: "snap-a", SizeBytes: snapSize,
			StorageClassName: "cls", Capacity: &capacity, Phase: storkv1.VolumeSucceeded}}}}
	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r", UID: "restore-uid"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: "snap"}, ClaimNameMapping: map[string]string{"a": "a2"}}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(append([]client.Object{snap, rs}, objs...)...).
		WithStatusSubresource(&storkv1.Restore{}, &corev1.PersistentVolumeClaim{}).Build()
	drv := &sourceRestorer{Driver: fakedriver.New(1), source: volumeSnapshotSource("snap-a"), sizeBytes: snapSize}
	return &dataSourceRestore{t: t, c: c, key: client.ObjectKeyFromObject(rs),
		r: &Reconciler{Client: c, Drivers: drivers.NewSet(drv), AdminNamespace: "stork-system"}}
}

// reconcile runs one round and returns the Restore's volume.
func (d *dataSourceRestore) reconcile() (*storkv1.Restore, storkv1.RestoreVolumeStatus) {
	d.t.Helper()
	if _, err := d.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: d.key}); err != nil {
		d.t.Fatal(err)
	}
	rs := &storkv1.Restore{}
	if err := d.c.Get(context.Background(), d.key, rs); err != nil {
		d.t.Fatal(err)
	}
	if len(rs.Status.Volumes) != 1 {
		d.t.Fatalf("volumes %+v, want one", rs.Status.Volumes)
	}
	return rs, rs.Status.Volumes[0]
}

func (d *dataSourceRestore) claim() *corev1.PersistentVolumeClaim {
	d.t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	if err := d.c.Get(context.Background(), client.ObjectKey{Namespace: "app", Name: "a2"}, pvc); err != nil {
		d.t.Fatal(err)
	}
	return pvc
}

// TestRestoreDataSourceClaim checks the claim made for a driver that answers with a data source:
// provisioned from it, not pre-bound, and asking for at least the snapshot's size.
func TestRestoreDataSourceClaim(t *testing.T) {
	cases := []struct {
		name     string
		capacity string
		snapSize int64
		want     string
	}{
		{name: "snapshot larger than the claim", capacity: "1Gi", snapSize: 3 << 30, want: "3Gi"},
		{name: "snapshot smaller than the claim", capacity: "2Gi", snapSize: 512 << 20, want: "2Gi"},
		{name: "snapshot as large as the claim", capacity: "1Gi", snapSize: 1 << 30, want: "1Gi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDataSourceRestore(t, resource.MustParse(tc.capacity), tc.snapSize)
			d.reconcile() // plan
			d.reconcile() // restore, create the claim
			pvc := d.claim()
			if !equality.Semantic.DeepEqual(pvc.Spec.DataSource, volumeSnapshotSource("snap-a")) {
				t.Errorf("claim's dataSource %+v, want VolumeSnapshot snap-a", pvc.Spec.DataSource)
			}
			if pvc.Spec.VolumeName != "" {
				t.Errorf("claim pre-bound to %q, want it provisioned", pvc.Spec.VolumeName)
			}
			if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse(tc.want)) != 0 {
				t.Errorf("claim requests %s, want %s", got.String(), tc.want)
			}
			if ptr.Deref(pvc.Spec.StorageClassName, "") != "cls" || pvc.Annotations[storkv1.AnnotationRestoredBy] != "restore-uid" {
				t.Errorf("claim %+v, want class cls, made by the Restore", pvc)
			}
		})
	}
}

// TestRestoreDataSourcePhases checks how a restored volume's phase follows a claim provisioned
// from a data source.
func TestRestoreDataSourcePhases(t *testing.T) {
	class := func(mode *storagev1.VolumeBindingMode) *storagev1.StorageClass {
		return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "cls"}, Provisioner: fakedriver.Name, VolumeBindingMode: mode}
	}
	immediate, wffc := ptr.To(storagev1.VolumeBindingImmediate), ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)
	cases := []struct {
		name  string
		class *storagev1.StorageClass // nil: none
		// existing, if set, is a claim this Restore made before (with that dataSource), created
		// after the plan and before the driver is asked.
		existing *corev1.TypedLocalObjectReference
		conflict bool // the existing claim has no dataSource
		bind     bool // the PV controller binds the claim after it is made
		phase    storkv1.VolumePhase
		reason   string
		message  []string // substrings of the volume's message
		restore  storkv1.RestorePhase
	}{
		{name: "not bound, Immediate class", class: class(immediate),
			phase: storkv1.VolumeInProgress, reason: "WaitingForBinding", message: []string{"app/a2", "being provisioned from VolumeSnapshot snap-a"},
			restore: storkv1.RestoreInProgress},
		{name: "not bound, class without a binding mode", class: class(nil),
			phase: storkv1.VolumeInProgress, reason: "WaitingForBinding", message: []string{"being provisioned"}, restore: storkv1.RestoreInProgress},
		{name: "not bound, class missing",
			phase: storkv1.VolumeInProgress, reason: "WaitingForBinding", message: []string{"being provisioned"}, restore: storkv1.RestoreInProgress},
		{name: "not bound, WaitForFirstConsumer class", class: class(wffc),
			phase: storkv1.VolumeSucceeded, reason: "Restored", message: []string{"app/a2", "VolumeSnapshot snap-a", "when a pod first uses it", "class cls"},
			restore: storkv1.RestoreCompleted},
		{name: "bound", class: class(immediate), bind: true,
			phase: storkv1.VolumeSucceeded, reason: "Restored", message: []string{"bound to PersistentVolume pv-provisioned", "VolumeSnapshot snap-a"},
			restore: storkv1.RestoreCompleted},
		{name: "claim of this Restore from another VolumeSnapshot", class: class(immediate), existing: volumeSnapshotSource("other"),
			phase: storkv1.VolumeFailed, reason: "ClaimConflict", message: []string{"app/a2", "not provisioned from the restored VolumeSnapshot snap-a"},
			restore: storkv1.RestoreFailed},
		{name: "claim of this Restore from another kind of the same name", class: class(immediate),
			existing: &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "snap-a"},
			phase:    storkv1.VolumeFailed, reason: "ClaimConflict", message: []string{"not provisioned from"}, restore: storkv1.RestoreFailed},
		{name: "claim of this Restore without a dataSource", class: class(wffc), conflict: true,
			phase: storkv1.VolumeFailed, reason: "ClaimConflict", message: []string{"not provisioned from"}, restore: storkv1.RestoreFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var objs []client.Object
			if tc.class != nil {
				objs = append(objs, tc.class)
			}
			d := newDataSourceRestore(t, resource.MustParse("1Gi"), 1<<30, objs...)
			if _, v := d.reconcile(); v.Phase != storkv1.VolumePending || v.Reason != "" {
				t.Fatalf("planned volume %+v, want it Pending", v)
			}
			if tc.existing != nil || tc.conflict {
				pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "a2",
					Annotations: map[string]string{storkv1.AnnotationRestoredBy: "restore-uid"}},
					Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("cls"), DataSource: tc.existing}}
				if err := d.c.Create(ctx, pvc); err != nil {
					t.Fatal(err)
				}
			}
			rs, v := d.reconcile()
			if tc.bind {
				if v.Phase != storkv1.VolumeInProgress || v.Reason != "WaitingForBinding" {
					t.Fatalf("volume %+v before its claim bound, want it WaitingForBinding", v)
				}
				pvc := d.claim()
				pvc.Spec.VolumeName = "pv-provisioned"
				if err := d.c.Update(ctx, pvc); err != nil {
					t.Fatal(err)
				}
				pvc.Status.Phase = corev1.ClaimBound
				if err := d.c.Status().Update(ctx, pvc); err != nil {
					t.Fatal(err)
				}
				rs, v = d.reconcile()
			}
			if v.Phase != tc.phase || v.Reason != tc.reason {
				t.Errorf("volume %s %s (%s), want %s %s", v.Phase, v.Reason, v.Message, tc.phase, tc.reason)
			}
			for _, m := range tc.message {
				if !strings.Contains(v.Message, m) {
					t.Errorf("volume message %q does not say %q", v.Message, m)
				}
			}
			if rs.Status.Phase != tc.restore {
				t.Errorf("Restore %s, want %s: %+v", rs.Status.Phase, tc.restore, rs.Status)
			}
			if tc.existing != nil || tc.conflict {
				if pvc := d.claim(); !equality.Semantic.DeepEqual(pvc.Spec.DataSource, tc.existing) {
					t.Errorf("existing claim changed: dataSource %+v", pvc.Spec.DataSource)
				}
			}
		})
	}
}
