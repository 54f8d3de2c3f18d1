package csi

import (
	"context"
	"fmt"
	"strings"

	groupv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/names"
)

// Labels and annotations on the objects the driver makes.
const (
	// LabelSnapshot on a VolumeSnapshot names the Stork request (Snapshot UID) it was made for.
	LabelSnapshot = "stork.dev/snapshot-uid"
	// LabelClaim names the claim a VolumeSnapshot captures.
	LabelClaim = "stork.dev/claim"
	// AnnDefaultSnapshotClass marks a CSI driver's default VolumeSnapshotClass.
	AnnDefaultSnapshotClass = "snapshot.storage.kubernetes.io/is-default-class"
)

// objectName makes a name for an object the driver creates from the parts that identify it.
func objectName(prefix string, parts ...string) string { return names.Hashed(prefix, parts...) }

// Snapshot implements drivers.Snapshotter. The volumes of each CSI driver are captured by one
// VolumeGroupSnapshot where the driver has a class for it (and there are several volumes), else
// by one VolumeSnapshot each, all created before any status is read: they are cut together,
// right after the Snapshot's pre-hooks.
func (d *Driver) Snapshot(ctx context.Context, req drivers.SnapshotRequest) ([]drivers.VolumeStatus, error) {
	out := make([]drivers.VolumeStatus, len(req.Volumes))
	byDriver := map[string][]int{}
	var order []string
	for i, v := range req.Volumes {
		if !d.Owns(v) || v.PV == nil {
			return nil, fmt.Errorf("snapshot of %s: %w", drivers.Describe(v), drivers.ErrNotOwned)
		}
		cd := csiDriver(v.PV)
		if _, ok := byDriver[cd]; !ok {
			order = append(order, cd)
		}
		byDriver[cd] = append(byDriver[cd], i)
	}
	for _, cd := range order {
		idx := byDriver[cd]
		if done, err := d.groupSnapshot(ctx, req, cd, idx, out); err != nil || done {
			if err != nil {
				return nil, err
			}
			continue
		}
		class, why, err := d.snapshotClass(ctx, cd)
		if err != nil {
			return nil, err
		}
		for _, i := range idx {
			v := req.Volumes[i]
			if class == "" {
				out[i] = drivers.VolumeStatus{VolumeName: v.PV.Name, Phase: storkv1.VolumeFailed, Reason: "NoSnapshotClass", Message: why}
				continue
			}
			if _, err := d.ensureVolumeSnapshot(ctx, req, v, class); err != nil {
				if !meta.IsNoMatchError(err) && !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
					return nil, err // retried
				}
				out[i] = failedStatus(v.PV.Name, err)
			}
		}
		for _, i := range idx {
			if out[i].Phase == "" {
				out[i] = d.snapshotStatus(ctx, req.Namespace, snapshotName(req.ID, req.Volumes[i].PV.Name), req.Volumes[i].PV.Name)
			}
		}
	}
	return out, nil
}

// failedStatus fails a volume with an error the API server gave for an object the driver
// made: a request it will refuse on every retry (a VolumeSnapshot CRD that is not installed, a
// forbidden namespace) is not retried forever.
func failedStatus(volume string, err error) drivers.VolumeStatus {
	reason := "SnapshotFailed"
	if meta.IsNoMatchError(err) {
		reason = "SnapshotAPIMissing"
		err = fmt.Errorf("the VolumeSnapshot API is not installed in this cluster (install the external-snapshotter CRDs and snapshot-controller): %w", err)
	}
	return drivers.VolumeStatus{VolumeName: volume, Phase: storkv1.VolumeFailed, Reason: reason, Message: err.Error()}
}

// snapshotName is the VolumeSnapshot of one volume for one request.
func snapshotName(id, pv string) string { return objectName("stork-snap", id, pv) }

// ensureVolumeSnapshot creates the VolumeSnapshot of a volume unless it exists. It has no owner:
// the Stork Snapshot's deletion policy decides whether it goes with it (DeleteSnapshot).
func (d *Driver) ensureVolumeSnapshot(ctx context.Context, req drivers.SnapshotRequest, v drivers.Volume, class string) (*snapv1.VolumeSnapshot, error) {
	claim := v.PV.Spec.ClaimRef
	if v.Claim == nil && claim == nil {
		return nil, fmt.Errorf("PersistentVolume %s has no claim to snapshot", v.PV.Name)
	}
	claimName := ""
	if v.Claim != nil {
		claimName = v.Claim.Name
	} else {
		claimName = claim.Name
	}
	vs := &snapv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: snapshotName(req.ID, v.PV.Name),
			Labels: map[string]string{LabelSnapshot: names.LabelValue(req.ID), LabelClaim: names.LabelValue(claimName)}},
		Spec: snapv1.VolumeSnapshotSpec{
			Source:                  snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(claimName)},
			VolumeSnapshotClassName: ptr.To(class),
		},
	}
	if err := d.c.Create(ctx, vs); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating VolumeSnapshot %s/%s of claim %s: %w", vs.Namespace, vs.Name, claimName, err)
	}
	return vs, nil
}

// snapshotStatus reads a VolumeSnapshot into a volume status: ReadyToUse is done, an error
// fails the volume with the CSI driver's message (as Velero does: snapshot errors are rarely
// transient, and a Snapshot that waits on one forever protects nothing).
func (d *Driver) snapshotStatus(ctx context.Context, ns, name, volume string) drivers.VolumeStatus {
	st := drivers.VolumeStatus{VolumeName: volume, SnapshotID: name}
	vs := &snapv1.VolumeSnapshot{}
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vs); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsForbidden(err) {
			return failedStatus(volume, err) // refused on every retry
		}
		st.Phase, st.Reason = storkv1.VolumePending, "Creating"
		st.Message = fmt.Sprintf("VolumeSnapshot %s/%s is not visible yet: %v", ns, name, err)
		return st
	}
	return vsStatus(vs, st)
}

// vsStatus is the status a VolumeSnapshot's own status says.
func vsStatus(vs *snapv1.VolumeSnapshot, st drivers.VolumeStatus) drivers.VolumeStatus {
	key := vs.Namespace + "/" + vs.Name
	s := vs.Status
	switch {
	case s != nil && s.Error != nil && !ptr.Deref(s.ReadyToUse, false):
		st.Phase, st.Reason = storkv1.VolumeFailed, "SnapshotFailed"
		st.Message = fmt.Sprintf("VolumeSnapshot %s: %s", key, ptr.Deref(s.Error.Message, "failed without a message"))
	case s != nil && ptr.Deref(s.ReadyToUse, false):
		st.Phase, st.Reason, st.Message = storkv1.VolumeSucceeded, "", ""
		if s.RestoreSize != nil {
			st.SizeBytes = s.RestoreSize.Value()
		}
	case s == nil || s.BoundVolumeSnapshotContentName == nil:
		st.Phase, st.Reason = storkv1.VolumeInProgress, "WaitingForSnapshotController"
		st.Message = fmt.Sprintf("VolumeSnapshot %s is not bound to a VolumeSnapshotContent yet (is the snapshot-controller running?)", key)
	default:
		st.Phase, st.Reason = storkv1.VolumeInProgress, "WaitingForReadyToUse"
		st.Message = fmt.Sprintf("VolumeSnapshot %s is cut and not ReadyToUse yet (the storage may still be copying it)", key)
	}
	return st
}

// snapshotClass picks the VolumeSnapshotClass for a CSI driver: the one csi.snapshotClasses
// maps it to, else the driver's default class. It returns "" and why when there is none.
func (d *Driver) snapshotClass(ctx context.Context, csiDriver string) (string, string, error) {
	if c, ok := d.cfg.snapshotClasses[csiDriver]; ok {
		return c, "", nil
	}
	var classes snapv1.VolumeSnapshotClassList
	if err := d.c.List(ctx, &classes); err != nil {
		if meta.IsNoMatchError(err) {
			return "", "the VolumeSnapshot API is not installed in this cluster: install the external-snapshotter CRDs and snapshot-controller", nil
		}
		return "", "", fmt.Errorf("listing VolumeSnapshotClasses: %w", err)
	}
	var defaults, all []string
	for _, c := range classes.Items {
		if c.Driver != csiDriver {
			continue
		}
		all = append(all, c.Name)
		if c.Annotations[AnnDefaultSnapshotClass] == "true" {
			defaults = append(defaults, c.Name)
		}
	}
	switch {
	case len(defaults) == 1:
		return defaults[0], "", nil
	case len(defaults) > 1:
		return "", fmt.Sprintf("CSI driver %s has %d default VolumeSnapshotClasses (%s): keep one default, or map one with --driver-config %s=%s=<class>",
			csiDriver, len(defaults), strings.Join(defaults, ", "), ConfigSnapshotClasses, csiDriver), nil
	}
	have := "it has none"
	if len(all) > 0 {
		have = "it has " + strings.Join(all, ", ") + ", none of them default"
	}
	return "", fmt.Sprintf("no default VolumeSnapshotClass for CSI driver %s (%s): annotate one with %s=true, or map one with --driver-config %s=%s=<class>",
		csiDriver, have, AnnDefaultSnapshotClass, ConfigSnapshotClasses, csiDriver), nil
}

// DeleteSnapshot implements drivers.Snapshotter: the VolumeSnapshot goes (and with it, by its
// class's deletion policy, the storage's snapshot). A snapshot taken as part of a
// VolumeGroupSnapshot goes with its group, which the snapshot-controller deletes whole.
func (d *Driver) DeleteSnapshot(ctx context.Context, ref drivers.SnapshotRef) (bool, error) {
	if ref.SnapshotID == "" {
		return true, nil
	}
	if group, ok := strings.CutPrefix(ref.SnapshotID, groupIDPrefix); ok {
		err := d.api.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: group}, &groupv1.VolumeGroupSnapshot{})
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading VolumeGroupSnapshot %s/%s: %w", ref.Namespace, group, err)
		}
		return false, d.deleteGroup(ctx, ref.Namespace, group)
	}
	vs := &snapv1.VolumeSnapshot{}
	err := d.api.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.SnapshotID}, vs)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading VolumeSnapshot %s/%s: %w", ref.Namespace, ref.SnapshotID, err)
	}
	if group := groupOf(vs); group != "" {
		if err := d.deleteGroup(ctx, vs.Namespace, group); err != nil {
			return false, err
		}
	}
	if vs.DeletionTimestamp == nil {
		if err := d.c.Delete(ctx, vs); client.IgnoreNotFound(err) != nil {
			return false, fmt.Errorf("deleting VolumeSnapshot %s/%s: %w", vs.Namespace, vs.Name, err)
		}
	}
	return false, nil // done once it is gone, on a later call
}

// keyOf names an object for messages.
func keyOf(o client.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}
