package restore

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	fakedriver "stork.dev/stork/drivers/fake"
)

// restoreOnce reconciles until the Restore is final, playing the PV controller: claims the
// Restore makes are marked Bound.
func restoreOnce(t *testing.T, r *Reconciler, key client.ObjectKey) *storkv1.Restore {
	t.Helper()
	ctx := context.Background()
	rs := &storkv1.Restore{}
	for range 20 {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
		var claims corev1.PersistentVolumeClaimList
		if err := r.Client.List(ctx, &claims); err != nil {
			t.Fatal(err)
		}
		for i := range claims.Items {
			if pvc := &claims.Items[i]; pvc.Annotations[storkv1.AnnotationRestoredBy] != "" && pvc.Status.Phase != corev1.ClaimBound {
				pvc.Status.Phase = corev1.ClaimBound
				if err := r.Client.Status().Update(ctx, pvc); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := r.Client.Get(ctx, key, rs); err != nil {
			t.Fatal(err)
		}
		switch rs.Status.Phase {
		case storkv1.RestoreCompleted, storkv1.RestorePartiallyFailed, storkv1.RestoreFailed:
			return rs
		}
	}
	t.Fatalf("Restore not final after 20 rounds: %+v", rs.Status)
	return nil
}

func TestReconciler(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))

	cases := []struct {
		name     string
		ns       string
		spec     storkv1.RestoreSpec
		existing []string // claims that exist, as namespace/name
		phase    storkv1.RestorePhase
		reasons  map[string]string // source claim → volume reason; "" key: the Valid condition's
	}{
		{name: "within the namespace", ns: "app", spec: storkv1.RestoreSpec{ClaimNameMapping: map[string]string{"a": "a2", "b": "b2"}},
			phase: storkv1.RestoreCompleted, reasons: map[string]string{"a": "Restored", "b": "Restored"}},
		{name: "into another namespace from a user namespace", ns: "app", spec: storkv1.RestoreSpec{NamespaceMapping: map[string]string{"app": "other"}},
			phase: storkv1.RestoreFailed, reasons: map[string]string{"": "CrossNamespaceNotAllowed"}},
		{name: "into another namespace from stork-system", ns: "stork-system",
			spec:  storkv1.RestoreSpec{Source: storkv1.RestoreSource{Namespace: "app"}, NamespaceMapping: map[string]string{"app": "other"}},
			phase: storkv1.RestoreCompleted, reasons: map[string]string{"a": "Restored", "b": "Restored"}},
		{name: "an existing claim is not overwritten", ns: "app", existing: []string{"app/a"},
			phase: storkv1.RestorePartiallyFailed, reasons: map[string]string{"a": "ClaimExists", "b": "Restored"}},
		{name: "an existing claim skipped", ns: "app", existing: []string{"app/a", "app/b"}, spec: storkv1.RestoreSpec{ExistingObjectPolicy: storkv1.ExistingSkip},
			phase: storkv1.RestoreCompleted, reasons: map[string]string{"a": "Skipped", "b": "Skipped"}},
		{name: "two claims mapped to one name", ns: "app", spec: storkv1.RestoreSpec{ClaimNameMapping: map[string]string{"a": "same", "b": "same"}},
			phase: storkv1.RestorePartiallyFailed, reasons: map[string]string{"a": "Restored", "b": "TargetConflict"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drv := fakedriver.New(1)
			st, err := drv.Snapshot(ctx, drivers.SnapshotRequest{ID: "snap-uid", Volumes: []drivers.Volume{
				{PV: fakedriver.PV("pv-a", 1<<20)}, {PV: fakedriver.PV("pv-b", 2<<20)}}})
			if err != nil {
				t.Fatal(err)
			}
			capacity := resource.MustParse("1Gi")
			snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "snap"},
				Status: storkv1.SnapshotStatus{Phase: storkv1.SnapshotReady}}
			for i, claim := range []string{"a", "b"} {
				snap.Status.Volumes = append(snap.Status.Volumes, storkv1.SnapshotVolumeStatus{ClaimName: claim, VolumeName: st[i].VolumeName,
					Driver: fakedriver.Name, SnapshotID: st[i].SnapshotID, SizeBytes: st[i].SizeBytes, Phase: storkv1.VolumeSucceeded, Capacity: &capacity})
			}
			spec := tc.spec
			spec.Source.SnapshotName = "snap"
			rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: tc.ns, Name: "r", UID: "restore-uid"}, Spec: spec}
			objs := []client.Object{snap, rs}
			for _, e := range tc.existing {
				ns, name, _ := strings.Cut(e, "/")
				objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
			}
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
				WithStatusSubresource(&storkv1.Restore{}, &corev1.PersistentVolumeClaim{}).Build()
			r := &Reconciler{Client: c, Drivers: drivers.NewSet(drv), AdminNamespace: "stork-system"}
			got := restoreOnce(t, r, client.ObjectKeyFromObject(rs))
			if got.Status.Phase != tc.phase {
				t.Fatalf("phase %s, want %s: %+v", got.Status.Phase, tc.phase, got.Status)
			}
			for claim, reason := range tc.reasons {
				if claim == "" {
					if cond := meta.FindStatusCondition(got.Status.Conditions, storkv1.ConditionValid); cond == nil || cond.Reason != reason {
						t.Errorf("Valid condition %+v, want reason %s", cond, reason)
					}
					continue
				}
				found := false
				for _, v := range got.Status.Volumes {
					if v.SourceClaim == claim {
						found = true
						if v.Reason != reason {
							t.Errorf("claim %s: %+v, want reason %s", claim, v, reason)
						}
						if reason == "Restored" {
							pvc := &corev1.PersistentVolumeClaim{}
							if err := c.Get(ctx, client.ObjectKey{Namespace: v.TargetNamespace, Name: v.TargetClaim}, pvc); err != nil {
								t.Fatal(err)
							}
							if pvc.Spec.VolumeName == "" || pvc.Annotations[storkv1.AnnotationRestoredBy] != "restore-uid" || !pvc.Spec.Resources.Requests.Storage().Equal(capacity) {
								t.Errorf("restored claim %+v", pvc)
							}
						}
					}
				}
				if !found {
					t.Errorf("no status for claim %s", claim)
				}
			}
		})
	}
}

// A Restore deleted while it runs records Cancelled (status, Event) before it goes; one that
// finished carries no finalizer, so deleting it is immediate.
func TestCancel(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	drv := fakedriver.New(100) // the volume's work takes 100 calls: the Restore stays InProgress
	var st []drivers.VolumeStatus
	for range 100 {
		var err error
		if st, err = drv.Snapshot(ctx, drivers.SnapshotRequest{ID: "snap-uid", Volumes: []drivers.Volume{{PV: fakedriver.PV("pv-a", 1<<20)}}}); err != nil {
			t.Fatal(err)
		}
	}
	capacity := resource.MustParse("1Gi")
	snap := &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "snap"}, Status: storkv1.SnapshotStatus{Phase: storkv1.SnapshotReady,
		Volumes: []storkv1.SnapshotVolumeStatus{{ClaimName: "a", VolumeName: st[0].VolumeName, Driver: fakedriver.Name, SnapshotID: st[0].SnapshotID,
			SizeBytes: st[0].SizeBytes, Phase: storkv1.VolumeSucceeded, Capacity: &capacity}}}}
	rs := &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r", UID: "restore-uid"},
		Spec: storkv1.RestoreSpec{Source: storkv1.RestoreSource{SnapshotName: "snap"}, ClaimNameMapping: map[string]string{"a": "a2"}}}
	var recorded []storkv1.RestorePhase
	c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(s).WithObjects(snap, rs).WithStatusSubresource(&storkv1.Restore{}).Build(),
		interceptor.Funcs{SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
			recorded = append(recorded, obj.(*storkv1.Restore).Status.Phase)
			return cl.SubResource(sub).Patch(ctx, obj, p, o...)
		}})
	rec := events.NewFakeRecorder(10)
	r := &Reconciler{Client: c, Drivers: drivers.NewSet(drv), AdminNamespace: "stork-system", Recorder: rec}
	key := client.ObjectKeyFromObject(rs)
	for range 3 {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	got := &storkv1.Restore{}
	if err := c.Get(ctx, key, got); err != nil || got.Status.Phase != storkv1.RestoreInProgress || !slices.Contains(got.Finalizers, finalizer) {
		t.Fatalf("running Restore %+v %+v (%v): want InProgress with the finalizer", got.ObjectMeta, got.Status, err)
	}
	if err := c.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, key, got); !apierrors.IsNotFound(err) {
		t.Errorf("cancelled Restore still there (%v): %+v", err, got.ObjectMeta)
	}
	if len(recorded) == 0 || recorded[len(recorded)-1] != storkv1.RestoreCancelled {
		t.Errorf("phases written %v, want Cancelled last", recorded)
	}
	if ev := <-rec.Events; !strings.HasPrefix(ev, "Warning Cancelled") || !strings.Contains(ev, "0 of 1 claims had been restored") {
		t.Errorf("event %q", ev)
	}
}
