package csi

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/names"
)

// Annotations of the hand-over of a restored volume.
const (
	// AnnVolume on a download task names the PersistentVolume it restored into.
	AnnVolume = "stork.dev/volume"
	// AnnReclaimPolicy on a restored PersistentVolume keeps its class's reclaim policy while
	// the volume is set to Retain for the hand-over.
	AnnReclaimPolicy = "stork.dev/reclaim-policy"
	// LabelRestoredFromBackup names the repository snapshot a volume was restored from.
	LabelRestoredFromBackup = "stork.dev/restored-from-backup"
	// LabelHandOver marks a restored volume reserved for its target claim, whose reclaim
	// policy is to be restored once it is bound to that claim; AnnHandOverTo names the claim
	// (namespace/name).
	LabelHandOver = "stork.dev/hand-over"
	AnnHandOverTo = "stork.dev/hand-over-to"
	// LabelHandingOver marks a restored volume from the first step of its hand-over until it
	// is bound to its target claim; with the work annotations (AnnWorkKind, …) it lets the
	// sweeper delete a volume whose Restore went away half-way.
	LabelHandingOver = "stork.dev/handing-over"
	// AnnSelectedNode on a claim names the node whose topology its volume is provisioned for
	// (set by kube-scheduler for classes that wait for a consumer; csi-provisioner honours it
	// for any class).
	AnnSelectedNode = "volume.kubernetes.io/selected-node"
)

// handOver gives the volume a finished download restored into (under the temporary claim) to
// the target claim, one step per call, each safe to repeat:
//
//  1. the volume is set to Retain (its policy kept in an annotation) and its name recorded on
//     the task, so that deleting the temporary claim keeps it;
//  2. the mover pod and the temporary claim are deleted; the volume becomes Released;
//  3. the volume's claimRef is pointed at the target claim (no UID: pre-bound, so the volume is
//     Available to that claim only);
//  4. once the volume is Bound to the target claim, its reclaim policy is restored (here, or by
//     the sweeper, whichever comes first). Not before: a Released volume with the Delete policy
//     is deleted by the provisioner at once, even if its claimRef was just cleared.
//
// It reports Succeeded with the volume's name once the claimRef names the target claim; the
// restore controller then creates the claim bound to it.
func (d *Driver) handOver(ctx context.Context, task *storkv1.VolumeTask, req drivers.ImportRequest) (drivers.VolumeStatus, error) {
	tmp := task.Spec.VolumeName
	st := taskStatus(task, "")
	st.Phase, st.Reason, st.Message = storkv1.VolumeInProgress, "HandingOver", "handing the restored volume over to claim "+req.TargetNamespace+"/"+req.TargetClaim
	claim := &corev1.PersistentVolumeClaim{}
	err := d.api.Get(ctx, client.ObjectKey{Namespace: d.cfg.namespace, Name: tmp}, claim)
	switch {
	case err == nil:
		if claim.Spec.VolumeName == "" {
			return lost(st, fmt.Sprintf("temporary claim %s/%s has no volume, though the mover finished", d.cfg.namespace, tmp)), nil
		}
		w := work{kind: "Restore", namespace: task.Namespace, owner: req.Owner, claim: req.TargetNamespace + "/" + req.TargetClaim}
		if err := d.keepVolume(ctx, claim.Spec.VolumeName, task, w); apierrors.IsNotFound(err) {
			return lost(st, "the restored PersistentVolume "+claim.Spec.VolumeName+" was deleted before it was handed over"), nil
		} else if err != nil {
			return drivers.VolumeStatus{}, err
		}
		if task.Annotations[AnnVolume] != claim.Spec.VolumeName {
			if err := patchMeta(ctx, d.c, task, map[string]any{"annotations": map[string]any{AnnVolume: claim.Spec.VolumeName}}); err != nil {
				return drivers.VolumeStatus{}, fmt.Errorf("recording the restored volume on task %s: %w", keyOf(task), err)
			}
		}
		d.cleanup(ctx, task, false)
		if claim.DeletionTimestamp == nil {
			if err := d.c.Delete(ctx, claim); client.IgnoreNotFound(err) != nil {
				return drivers.VolumeStatus{}, fmt.Errorf("deleting temporary claim %s: %w", keyOf(claim), err)
			}
			d.log.Info("handing a restored volume over: its temporary claim is deleted", "volume", claim.Spec.VolumeName, "claim", keyOf(claim),
				"target", req.TargetNamespace+"/"+req.TargetClaim)
		}
		return st, nil
	case !apierrors.IsNotFound(err):
		return drivers.VolumeStatus{}, fmt.Errorf("reading temporary claim %s/%s: %w", d.cfg.namespace, tmp, err)
	}
	pvName := task.Annotations[AnnVolume]
	pv := &corev1.PersistentVolume{}
	if pvName == "" {
		return lost(st, fmt.Sprintf("temporary claim %s/%s was deleted before its volume was handed over", d.cfg.namespace, tmp)), nil
	}
	if err := d.api.Get(ctx, client.ObjectKey{Name: pvName}, pv); err != nil {
		if apierrors.IsNotFound(err) {
			return lost(st, "the restored PersistentVolume "+pvName+" was deleted before it was handed over"), nil
		}
		return drivers.VolumeStatus{}, fmt.Errorf("reading PersistentVolume %s: %w", pvName, err)
	}
	st.VolumeName = pv.Name
	ref := pv.Spec.ClaimRef
	switch {
	case ref != nil && ref.Namespace == req.TargetNamespace && ref.Name == req.TargetClaim:
		if err := d.finishHandOver(ctx, pv); err != nil {
			return drivers.VolumeStatus{}, err
		}
		st.Phase, st.Reason, st.Message = storkv1.VolumeSucceeded, "", ""
		return st, nil
	case ref != nil && (ref.Namespace != d.cfg.namespace || ref.Name != tmp):
		return lost(st, fmt.Sprintf("the restored PersistentVolume %s was claimed by %s/%s before it was handed over", pv.Name, ref.Namespace, ref.Name)), nil
	case ref != nil && pv.Status.Phase != corev1.VolumeReleased:
		return st, nil // the PV controller has not seen the claim go yet
	}
	target := req.TargetNamespace + "/" + req.TargetClaim
	body, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"labels": map[string]any{LabelHandOver: "true"}, "annotations": map[string]any{AnnHandOverTo: target}},
		"spec": map[string]any{"claimRef": map[string]any{"kind": "PersistentVolumeClaim", "apiVersion": "v1",
			"namespace": req.TargetNamespace, "name": req.TargetClaim, "uid": nil, "resourceVersion": nil}},
	})
	if err := d.c.Patch(ctx, pv, client.RawPatch(types.MergePatchType, body)); err != nil {
		return drivers.VolumeStatus{}, fmt.Errorf("handing PersistentVolume %s over to claim %s/%s: %w", pv.Name, req.TargetNamespace, req.TargetClaim, err)
	}
	d.log.Info("handed a restored volume over", "volume", pv.Name, "target", req.TargetNamespace+"/"+req.TargetClaim)
	st.Phase, st.Reason, st.Message = storkv1.VolumeSucceeded, "", ""
	return st, nil
}

func lost(st drivers.VolumeStatus, msg string) drivers.VolumeStatus {
	st.Phase, st.Reason, st.Message = storkv1.VolumeFailed, "VolumeLost", msg
	return st
}

// keepVolume sets a restored volume to Retain, keeping its policy in an annotation, labels it
// with the backup it holds, and marks it as handed over for w.
func (d *Driver) keepVolume(ctx context.Context, name string, task *storkv1.VolumeTask, w work) error {
	pv := &corev1.PersistentVolume{}
	if err := d.api.Get(ctx, client.ObjectKey{Name: name}, pv); err != nil {
		return fmt.Errorf("reading restored PersistentVolume %s: %w", name, err)
	}
	if _, done := pv.Annotations[AnnReclaimPolicy]; done {
		return nil
	}
	annotations := map[string]any{AnnReclaimPolicy: string(pv.Spec.PersistentVolumeReclaimPolicy)}
	for k, v := range w.meta("", "").Annotations {
		annotations[k] = v
	}
	body, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": annotations,
			"labels":      map[string]any{LabelRestoredFromBackup: names.LabelValue(task.Spec.RepositorySnapshotID), LabelHandingOver: "true"},
		},
		"spec": map[string]any{"persistentVolumeReclaimPolicy": corev1.PersistentVolumeReclaimRetain},
	})
	if err := d.c.Patch(ctx, pv, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("setting restored PersistentVolume %s to Retain for its hand-over: %w", name, err)
	}
	d.log.Info("keeping a restored volume for its hand-over", "volume", name, "reclaimPolicy", pv.Spec.PersistentVolumeReclaimPolicy)
	return nil
}

// finishHandOver restores a handed-over volume's reclaim policy once it is bound to the claim
// it was handed over to (claimRef with that claim's UID, phase Bound), and drops the hand-over
// marks. Any other state is left alone: a volume still bound to its temporary claim, or
// released, must keep Retain.
func (d *Driver) finishHandOver(ctx context.Context, pv *corev1.PersistentVolume) error {
	ref := pv.Spec.ClaimRef
	if pv.Labels[LabelHandOver] != "true" || pv.Status.Phase != corev1.VolumeBound || ref == nil || ref.UID == "" ||
		ref.Namespace+"/"+ref.Name != pv.Annotations[AnnHandOverTo] {
		return nil
	}
	spec := map[string]any{}
	policy := pv.Annotations[AnnReclaimPolicy]
	if policy != "" {
		spec["persistentVolumeReclaimPolicy"] = policy
	}
	body, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]any{AnnReclaimPolicy: nil, AnnHandOverTo: nil, AnnWorkKind: nil, AnnWorkNamespace: nil, AnnWorkName: nil,
				AnnWorkUID: nil, AnnForClaim: nil},
			"labels": map[string]any{LabelHandOver: nil, LabelHandingOver: nil}},
		"spec": spec,
	})
	if err := d.c.Patch(ctx, pv, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("restoring the reclaim policy %s of PersistentVolume %s: %w", policy, pv.Name, err)
	}
	d.log.Info("a handed-over volume is bound: its reclaim policy is restored", "volume", pv.Name, "reclaimPolicy", policy)
	return nil
}

// patchMeta merge-patches an object's metadata.
func patchMeta(ctx context.Context, c client.Client, o client.Object, m map[string]any) error {
	body, _ := json.Marshal(map[string]any{"metadata": m})
	return c.Patch(ctx, o, client.RawPatch(types.MergePatchType, body))
}
