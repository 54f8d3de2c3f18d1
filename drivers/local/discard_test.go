package local

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// TestDiscard: a restored volume that was never handed over is removed: its making task is
// stopped (deleted), its PersistentVolume deleted, and a DeleteVolume task on its node removes
// the data; one whose claim is bound to it is the claim's and stays; nothing made is nothing to do.
func TestDiscard(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithStatusSubresource(&storkv1.VolumeTask{}).Build()
	d, _ := New(drivers.Options{Client: c, Config: map[string]string{ConfigRoots: "/srv"}})
	req := drivers.RestoreRequest{ID: "r-uid/data", Namespace: "app", Source: drivers.SnapshotRef{SnapshotID: "pv-a-1234", Node: "n1"},
		TargetNamespace: "copy", TargetClaim: "data", SizeBytes: 1 << 30, StorageClassName: "local"}
	discard := drivers.DiscardRequest{ID: req.ID, Namespace: "app"}

	if st, err := d.Discard(ctx, drivers.DiscardRequest{ID: "other/claim", Namespace: "app"}); err != nil || st.Phase != storkv1.VolumeSucceeded || st.Reason != drivers.ReasonNothingMade {
		t.Fatalf("discarding what was never made: %+v, %v", st, err)
	}

	// The copy is done and its volume made, pre-bound to a claim that does not exist yet.
	if _, err := d.Restore(ctx, req); err != nil {
		t.Fatal(err)
	}
	maker := &storkv1.VolumeTask{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "app", Name: taskName("restore", req.ID)}, maker); err != nil {
		t.Fatal(err)
	}
	maker.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskSucceeded, Path: "/srv/n1/volumes/" + maker.Spec.VolumeName}
	if err := c.Status().Update(ctx, maker); err != nil {
		t.Fatal(err)
	}
	st, err := d.Restore(ctx, req)
	if err != nil || st.Phase != storkv1.VolumeSucceeded {
		t.Fatal(st, err)
	}
	pvName := st.VolumeName

	st, err = d.Discard(ctx, discard)
	if err != nil || st.Final() {
		t.Fatalf("first call: %+v, %v; want the removal under way", st, err)
	}
	del := &storkv1.VolumeTask{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "app", Name: taskName("delete-volume", req.ID)}, del); err != nil {
		t.Fatal(err)
	}
	if del.Spec.Type != storkv1.TaskDeleteVolume || del.Spec.NodeName != "n1" || del.Spec.VolumeName != pvName {
		t.Errorf("delete task %+v, want DeleteVolume of %s on n1", del.Spec, pvName)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(maker), &storkv1.VolumeTask{}); !apierrors.IsNotFound(err) {
		t.Errorf("the making task: %v, want it deleted (so that the agent stops it)", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: pvName}, &corev1.PersistentVolume{}); !apierrors.IsNotFound(err) {
		t.Errorf("PersistentVolume %s: %v, want it deleted", pvName, err)
	}
	del.Status.Phase = storkv1.TaskSucceeded
	if err := c.Status().Update(ctx, del); err != nil {
		t.Fatal(err)
	}
	if st, err = d.Discard(ctx, discard); err != nil || st.Phase != storkv1.VolumeSucceeded || st.Reason != drivers.ReasonDiscarded {
		t.Fatalf("once the agent removed it: %+v, %v", st, err)
	}

	// A volume whose claim is bound to it was handed over: it stays.
	kept := drivers.RestoreRequest{ID: "r-uid/kept", Namespace: "app", Source: req.Source, TargetNamespace: "copy", TargetClaim: "kept", SizeBytes: 1, StorageClassName: "local"}
	if _, err := d.Restore(ctx, kept); err != nil {
		t.Fatal(err)
	}
	maker = &storkv1.VolumeTask{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "app", Name: taskName("restore", kept.ID)}, maker); err != nil {
		t.Fatal(err)
	}
	maker.Status = storkv1.VolumeTaskStatus{Phase: storkv1.TaskSucceeded, Path: "/srv/n1/volumes/" + maker.Spec.VolumeName}
	if err := c.Status().Update(ctx, maker); err != nil {
		t.Fatal(err)
	}
	if st, err = d.Restore(ctx, kept); err != nil || st.Phase != storkv1.VolumeSucceeded {
		t.Fatal(st, err)
	}
	pvc := &corev1.PersistentVolumeClaim{}
	pvc.Namespace, pvc.Name, pvc.UID, pvc.Spec.VolumeName = "copy", "kept", "claim-uid", st.VolumeName
	if err := c.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{}
	if err := c.Get(ctx, client.ObjectKey{Name: st.VolumeName}, pv); err != nil {
		t.Fatal(err)
	}
	pv.Spec.ClaimRef.UID = pvc.UID
	if err := c.Update(ctx, pv); err != nil {
		t.Fatal(err)
	}
	st, err = d.Discard(ctx, drivers.DiscardRequest{ID: kept.ID, Namespace: "app"})
	if err != nil || st.Phase != storkv1.VolumeFailed || st.Reason != "HandedOver" {
		t.Fatalf("discarding a handed-over volume: %+v, %v; want Failed HandedOver", st, err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: pv.Name}, &corev1.PersistentVolume{}); err != nil {
		t.Errorf("the handed-over volume: %v, want it kept", err)
	}
}
