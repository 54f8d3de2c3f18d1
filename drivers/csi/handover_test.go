package csi

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/names"
)

// restoredEnv is an import whose mover finished: the task Succeeded and the temporary claim is
// bound to PV pv-restored (reclaim policy Delete).
func restoredEnv(t *testing.T) *env { return restoredEnvWith(t, nil) }

func restoredEnvWith(t *testing.T, funcs *interceptor.Funcs) *env {
	t.Helper()
	e := newEnv(t, nil, funcs, append(moverObjects(), readyNode("a", zoneA)...)...)
	e.imp()
	tmp := importTemp()
	setStatus(e, &corev1.Pod{}, storkNS, moverPod(importTaskName(), 1), func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
	setStatus(e, &storkv1.VolumeTask{}, appNS, importTaskName(), func(tk *storkv1.VolumeTask) {
		tk.Status.Phase, tk.Status.SizeBytes = storkv1.TaskSucceeded, 4096
	})
	pvc := &corev1.PersistentVolumeClaim{}
	update(e, pvc, storkNS, tmp, func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv-restored" })
	pv := csiPV("pv-restored", ebs, "")
	pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: storkNS, Name: tmp, UID: pvc.UID, ResourceVersion: "7"}
	e.create(pv)
	setStatus(e, &corev1.PersistentVolume{}, "", pv.Name, func(p *corev1.PersistentVolume) { p.Status.Phase = corev1.VolumeBound })
	return e
}

func TestImportHandOver(t *testing.T) {
	e := restoredEnv(t)
	tmp := importTemp()

	// 1. The volume is kept (Retain, the policy remembered), recorded on the task, and the
	// temporary claim and pod go.
	st := e.imp()
	wantStatus(t, st, storkv1.VolumeInProgress, "HandingOver", targetNS+"/"+targetClaim)
	pv := &corev1.PersistentVolume{}
	e.get(pv, "", "pv-restored")
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || pv.Annotations[AnnReclaimPolicy] != "Delete" ||
		pv.Labels[LabelRestoredFromBackup] != names.LabelValue(repoSnapID) {
		t.Errorf("restored volume: policy %s annotations %v labels %v", pv.Spec.PersistentVolumeReclaimPolicy, pv.Annotations, pv.Labels)
	}
	if tk := e.task(importTaskName()); tk.Annotations[AnnVolume] != "pv-restored" {
		t.Errorf("task annotations %v", tk.Annotations)
	}
	if e.exists(&corev1.PersistentVolumeClaim{}, storkNS, tmp) {
		t.Error("the temporary claim was not deleted")
	}
	if e.exists(&corev1.Pod{}, storkNS, moverPod(importTaskName(), 1)) {
		t.Error("the mover pod was not deleted")
	}

	// 2. The PV controller has not released the volume yet: wait, claimRef untouched.
	st = e.imp()
	wantStatus(t, st, storkv1.VolumeInProgress, "HandingOver")
	if st.VolumeName != "pv-restored" {
		t.Errorf("status %+v", st)
	}
	e.get(pv, "", "pv-restored")
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Name != tmp || ref.Namespace != storkNS {
		t.Fatalf("claimRef %+v changed before the volume was Released", ref)
	}

	// 3. Released: pre-bound to the target claim (no UID), still Retain: a Released volume
	// with the Delete policy would be deleted by the provisioner at once.
	setStatus(e, pv, "", "pv-restored", func(p *corev1.PersistentVolume) { p.Status.Phase = corev1.VolumeReleased })
	for call := 1; call <= 2; call++ {
		st = e.imp()
		if st.Phase != storkv1.VolumeSucceeded || st.VolumeName != "pv-restored" || st.Reason != "" || st.SizeBytes != 4096 {
			t.Fatalf("call %d: status %+v", call, st)
		}
	}
	e.get(pv, "", "pv-restored")
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.Namespace != targetNS || ref.Name != targetClaim || ref.UID != "" || ref.ResourceVersion != "" || ref.Kind != "PersistentVolumeClaim" {
		t.Errorf("claimRef %+v", ref)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("reclaim policy %s before the volume is bound, want Retain", pv.Spec.PersistentVolumeReclaimPolicy)
	}

	if pv.Labels[LabelHandOver] != "true" || pv.Annotations[AnnHandOverTo] != targetNS+"/"+targetClaim {
		t.Errorf("handed-over volume labels %v, annotations %v; want the hand-over marks naming the target", pv.Labels, pv.Annotations)
	}

	// Not bound to the target claim yet (the PV controller has not bound it): the sweeper
	// leaves the policy alone.
	e.d.Sweep(e.ctx)
	e.get(pv, "", "pv-restored")
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Fatalf("the sweeper restored the policy (%s) of a volume not bound to its target claim", pv.Spec.PersistentVolumeReclaimPolicy)
	}

	// 4. Bound to the target claim: the class's policy is back (by the next call, or the
	// sweeper), and the hand-over marks are gone.
	for _, finish := range []struct {
		name string
		do   func()
	}{{"import", func() { e.imp() }}, {"sweeper", func() { e.d.Sweep(e.ctx) }}} {
		update(e, &corev1.PersistentVolume{}, "", "pv-restored", func(p *corev1.PersistentVolume) {
			p.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
			p.Labels = map[string]string{LabelHandOver: "true", LabelHandingOver: "true"}
			p.Annotations = map[string]string{AnnReclaimPolicy: "Delete", AnnHandOverTo: targetNS + "/" + targetClaim}
			p.Spec.ClaimRef.UID = "uid-of-the-target-claim"
		})
		setStatus(e, pv, "", "pv-restored", func(p *corev1.PersistentVolume) { p.Status.Phase = corev1.VolumeBound })
		finish.do()
		e.get(pv, "", "pv-restored")
		if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Labels[LabelHandOver] != "" || pv.Labels[LabelHandingOver] != "" ||
			pv.Annotations[AnnReclaimPolicy] != "" {
			t.Errorf("%s: bound volume has policy %s, labels %v, annotations %v; want Delete and no hand-over marks",
				finish.name, pv.Spec.PersistentVolumeReclaimPolicy, pv.Labels, pv.Annotations)
		}
	}
}

// A volume whose class retains keeps Retain after the hand-over.
func TestImportHandOverKeepsRetain(t *testing.T) {
	e := restoredEnv(t)
	update(e, &corev1.PersistentVolume{}, "", "pv-restored", func(p *corev1.PersistentVolume) {
		p.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	})
	e.imp()
	setStatus(e, &corev1.PersistentVolume{}, "", "pv-restored", func(p *corev1.PersistentVolume) { p.Status.Phase = corev1.VolumeReleased })
	wantStatus(t, e.imp(), storkv1.VolumeSucceeded, "")
	pv := &corev1.PersistentVolume{}
	e.get(pv, "", "pv-restored")
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("reclaim policy %s", pv.Spec.PersistentVolumeReclaimPolicy)
	}
}

func TestImportHandOverLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(e *env) // before the first hand-over step
		after  func(e *env) // after it
		msg    string
	}{
		{"claimed by someone else", nil, func(e *env) {
			update(e, &corev1.PersistentVolume{}, "", "pv-restored", func(p *corev1.PersistentVolume) {
				p.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "mallory", Name: "grab", UID: types.UID("x")}
			})
		}, "mallory/grab"},
		{"claimed by someone else after the release", nil, func(e *env) {
			setStatus(e, &corev1.PersistentVolume{}, "", "pv-restored", func(p *corev1.PersistentVolume) { p.Status.Phase = corev1.VolumeReleased })
			update(e, &corev1.PersistentVolume{}, "", "pv-restored", func(p *corev1.PersistentVolume) {
				p.Spec.ClaimRef = &corev1.ObjectReference{Namespace: targetNS, Name: "other"}
			})
		}, targetNS + "/other"},
		{"volume deleted", nil, func(e *env) {
			pv := &corev1.PersistentVolume{}
			e.get(pv, "", "pv-restored")
			if err := e.c.Delete(e.ctx, pv); err != nil {
				e.t.Fatal(err)
			}
		}, "was deleted"},
		{"temporary claim without a volume", func(e *env) {
			update(e, &corev1.PersistentVolumeClaim{}, storkNS, importTemp(), func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "" })
		}, nil, "has no volume"},
		{"temporary claim deleted before the volume was recorded", func(e *env) {
			pvc := &corev1.PersistentVolumeClaim{}
			e.get(pvc, storkNS, importTemp())
			if err := e.c.Delete(e.ctx, pvc); err != nil {
				e.t.Fatal(err)
			}
		}, nil, "before its volume was handed over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := restoredEnv(t)
			if tc.before != nil {
				tc.before(e)
			} else {
				wantStatus(t, e.imp(), storkv1.VolumeInProgress, "HandingOver")
				tc.after(e)
			}
			wantStatus(t, e.imp(), storkv1.VolumeFailed, "VolumeLost", tc.msg)
			if pv := (&corev1.PersistentVolume{}); e.exists(pv, "", "pv-restored") && pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == targetNS &&
				pv.Spec.ClaimRef.Name == targetClaim {
				t.Error("a lost volume was handed over")
			}
		})
	}
}

// A Restore deleted during the hand-over leaves no volume behind: the sweeper restores the
// class's policy and deletes the volume, after any step; while the Restore exists, it waits.
func TestSweepOrphanedHandOver(t *testing.T) {
	for _, steps := range []int{1, 2} { // 1: kept (Retain), 2: also pre-bound to the target
		t.Run(fmt.Sprintf("after %d steps", steps), func(t *testing.T) {
			// The volume as it was when deleted.
			var deleted *corev1.PersistentVolume
			e := restoredEnvWith(t, &interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if pv, ok := obj.(*corev1.PersistentVolume); ok {
					deleted = &corev1.PersistentVolume{}
					if err := c.Get(ctx, client.ObjectKeyFromObject(pv), deleted); err != nil {
						return err
					}
				}
				return c.Delete(ctx, obj, opts...)
			}})
			e.imp() // step 1
			if steps == 2 {
				setStatus(e, &corev1.PersistentVolume{}, "", "pv-restored", func(p *corev1.PersistentVolume) { p.Status.Phase = corev1.VolumeReleased })
				wantStatus(t, e.imp(), storkv1.VolumeSucceeded, "")
			}
			pv := &corev1.PersistentVolume{}
			e.get(pv, "", "pv-restored")
			if pv.Labels[LabelHandingOver] != "true" || pv.Annotations[AnnWorkUID] != restoreUID {
				t.Fatalf("a volume being handed over is marked %v / %v, want the hand-over label and its Restore", pv.Labels, pv.Annotations)
			}
			e.d.Sweep(e.ctx)
			if !e.exists(&corev1.PersistentVolume{}, "", "pv-restored") {
				t.Fatal("the sweeper deleted a volume whose Restore is still there")
			}
			if err := e.c.Delete(e.ctx, &storkv1.Restore{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "rs"}}); err != nil {
				t.Fatal(err)
			}
			e.d.Sweep(e.ctx)
			if deleted == nil || deleted.Name != "pv-restored" {
				t.Fatalf("the orphaned volume was not deleted (deleted: %v)", deleted)
			}
			if deleted.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
				t.Errorf("deleted with reclaim policy %s: the provisioner would keep its storage", deleted.Spec.PersistentVolumeReclaimPolicy)
			}
		})
	}
}
