package csi

import (
	"context"
	"fmt"

	groupv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/names"
)

const (
	// LabelGroup on a claim selects it into the VolumeGroupSnapshot being taken; it is
	// removed once the group is cut.
	LabelGroup = "stork.dev/group-snapshot"
	// AnnDefaultGroupClass marks a CSI driver's default VolumeGroupSnapshotClass.
	AnnDefaultGroupClass = "groupsnapshot.storage.kubernetes.io/is-default-class"
	// groupIDPrefix starts the snapshot ID of a volume whose group has no member snapshot of
	// it (not cut yet, or failed): deleting that ID deletes the group, so that a Snapshot
	// deleted or failed half-way leaves no group behind.
	groupIDPrefix = "group/"
)

// groupSnapshot captures the volumes idx of one CSI driver with one VolumeGroupSnapshot, if the
// driver has a class for it, filling out. It returns false when the volumes are to be
// snapshotted one by one instead.
//
// The group selects claims by a label: the driver labels the claims (and only those) with the
// group's name, and removes the label once the group is cut. The snapshot-controller makes a
// VolumeSnapshot per member, owned by the group and naming its claim.
func (d *Driver) groupSnapshot(ctx context.Context, req drivers.SnapshotRequest, csiDriver string, idx []int, out []drivers.VolumeStatus) (bool, error) {
	if !d.cfg.groupSnapshots || len(idx) < 2 {
		return false, nil
	}
	for _, i := range idx {
		if req.Volumes[i].Claim == nil {
			return false, nil // a deleted claim cannot be selected
		}
	}
	name := objectName("stork-group", req.ID, csiDriver)
	vgs := &groupv1.VolumeGroupSnapshot{}
	err := d.c.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: name}, vgs)
	switch {
	case apierrors.IsNotFound(err):
		class, err := d.groupClass(ctx, csiDriver)
		if class == "" || err != nil {
			return false, err
		}
		for _, i := range idx {
			if err := d.patchClaimLabel(ctx, req.Volumes[i].Claim, name); err != nil {
				return false, err
			}
		}
		vgs = &groupv1.VolumeGroupSnapshot{
			ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: name, Labels: map[string]string{LabelSnapshot: names.LabelValue(req.ID)}},
			Spec: groupv1.VolumeGroupSnapshotSpec{
				Source:                       groupv1.VolumeGroupSnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelGroup: name}}},
				VolumeGroupSnapshotClassName: ptr.To(class),
			},
		}
		if err := d.c.Create(ctx, vgs); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating VolumeGroupSnapshot %s/%s: %w", req.Namespace, name, err)
		}
		for _, i := range idx {
			out[i] = drivers.VolumeStatus{VolumeName: req.Volumes[i].PV.Name, Phase: storkv1.VolumeInProgress, Reason: "WaitingForGroupSnapshot",
				Message: "VolumeGroupSnapshot " + req.Namespace + "/" + name + " was created", SnapshotID: groupIDPrefix + name}
		}
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil // no group snapshot API: one by one
	case err != nil:
		return false, fmt.Errorf("reading VolumeGroupSnapshot %s/%s: %w", req.Namespace, name, err)
	}
	d.groupStatus(ctx, req, vgs, idx, out)
	return true, nil
}

// groupStatus fills out from a VolumeGroupSnapshot and its member VolumeSnapshots.
func (d *Driver) groupStatus(ctx context.Context, req drivers.SnapshotRequest, vgs *groupv1.VolumeGroupSnapshot, idx []int, out []drivers.VolumeStatus) {
	key := keyOf(vgs)
	s := vgs.Status
	set := func(phase storkv1.VolumePhase, reason, msg string) {
		for _, i := range idx {
			out[i] = drivers.VolumeStatus{VolumeName: req.Volumes[i].PV.Name, Phase: phase, Reason: reason, Message: msg, SnapshotID: groupIDPrefix + vgs.Name}
		}
	}
	switch {
	case s != nil && s.Error != nil && !ptr.Deref(s.ReadyToUse, false):
		set(storkv1.VolumeFailed, "SnapshotFailed", fmt.Sprintf("VolumeGroupSnapshot %s: %s", key, ptr.Deref(s.Error.Message, "failed without a message")))
		d.unlabelClaims(ctx, req, idx, vgs.Name)
		return
	case s == nil || !ptr.Deref(s.ReadyToUse, false):
		set(storkv1.VolumeInProgress, "WaitingForGroupSnapshot", fmt.Sprintf("VolumeGroupSnapshot %s is not ReadyToUse yet", key))
		return
	}
	var members snapv1.VolumeSnapshotList
	if err := d.c.List(ctx, &members, client.InNamespace(vgs.Namespace)); err != nil {
		set(storkv1.VolumeInProgress, "WaitingForGroupSnapshot", fmt.Sprintf("listing the VolumeSnapshots of group %s: %v", key, err))
		return
	}
	byClaim := map[string]*snapv1.VolumeSnapshot{}
	for i := range members.Items {
		m := &members.Items[i]
		if ownedBy(m, vgs.UID) && m.Spec.Source.PersistentVolumeClaimName != nil {
			byClaim[*m.Spec.Source.PersistentVolumeClaimName] = m
		}
	}
	for _, i := range idx {
		v := req.Volumes[i]
		m, ok := byClaim[v.Claim.Name]
		if !ok {
			out[i] = drivers.VolumeStatus{VolumeName: v.PV.Name, Phase: storkv1.VolumeFailed, Reason: "NotInGroup", SnapshotID: groupIDPrefix + vgs.Name,
				Message: fmt.Sprintf("VolumeGroupSnapshot %s is ready but has no VolumeSnapshot of claim %s", key, v.Claim.Name)}
			continue
		}
		out[i] = vsStatus(m, drivers.VolumeStatus{VolumeName: v.PV.Name, SnapshotID: m.Name})
	}
	d.unlabelClaims(ctx, req, idx, vgs.Name)
}

func ownedBy(o metav1.Object, uid types.UID) bool {
	for _, r := range o.GetOwnerReferences() {
		if r.UID == uid {
			return true
		}
	}
	return false
}

// groupOf names the VolumeGroupSnapshot a member VolumeSnapshot belongs to ("" if none).
func groupOf(vs *snapv1.VolumeSnapshot) string {
	for _, r := range vs.OwnerReferences {
		if r.Kind == "VolumeGroupSnapshot" {
			return r.Name
		}
	}
	return ""
}

// deleteGroup deletes a VolumeGroupSnapshot (its members go with it).
func (d *Driver) deleteGroup(ctx context.Context, ns, name string) error {
	vgs := &groupv1.VolumeGroupSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := d.c.Delete(ctx, vgs); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting VolumeGroupSnapshot %s/%s: %w", ns, name, err)
	}
	return nil
}

// groupClass picks the VolumeGroupSnapshotClass of a CSI driver: the mapped one, else its
// single default; "" when there is none (or no group snapshot API).
func (d *Driver) groupClass(ctx context.Context, csiDriver string) (string, error) {
	if c, ok := d.cfg.groupClasses[csiDriver]; ok {
		return c, nil
	}
	var classes groupv1.VolumeGroupSnapshotClassList
	if err := d.c.List(ctx, &classes); err != nil {
		if meta.IsNoMatchError(err) {
			return "", nil
		}
		return "", fmt.Errorf("listing VolumeGroupSnapshotClasses: %w", err)
	}
	var defaults []string
	for _, c := range classes.Items {
		if c.Driver == csiDriver && c.Annotations[AnnDefaultGroupClass] == "true" {
			defaults = append(defaults, c.Name)
		}
	}
	if len(defaults) == 1 {
		return defaults[0], nil
	}
	return "", nil
}

// unlabelClaims removes the group label from the group's claims, best effort: a label left
// behind selects nothing (groups are made once, by name).
func (d *Driver) unlabelClaims(ctx context.Context, req drivers.SnapshotRequest, idx []int, group string) {
	for _, i := range idx {
		if pvc := req.Volumes[i].Claim; pvc != nil && pvc.Labels[LabelGroup] == group {
			if err := d.patchClaimLabel(ctx, pvc, ""); err != nil {
				d.log.Info("could not remove the group snapshot label from a claim", "claim", keyOf(pvc), "error", err.Error())
			}
		}
	}
}

// patchClaimLabel sets (value != "") or removes the group label with a merge patch, leaving
// every other field of the application's claim alone.
func (d *Driver) patchClaimLabel(ctx context.Context, pvc *corev1.PersistentVolumeClaim, value string) error {
	var v any
	if value != "" {
		v = value
	}
	obj := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: pvc.Namespace, Name: pvc.Name}}
	if err := patchMeta(ctx, d.c, obj, map[string]any{"labels": map[string]any{LabelGroup: v}}); err != nil {
		return fmt.Errorf("labelling PersistentVolumeClaim %s for group snapshot %s: %w", keyOf(pvc), value, err)
	}
	return nil
}
