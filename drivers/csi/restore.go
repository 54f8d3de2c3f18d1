package csi

import (
	"context"
	"fmt"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// Restore implements drivers.Restorer: the target claim is provisioned by the CSI driver from a
// VolumeSnapshot (the status's DataSource). In the snapshot's own namespace that is the
// snapshot itself. In another namespace it is a VolumeSnapshot made there and bound to a
// pre-provisioned VolumeSnapshotContent that points at the same storage snapshot, with the
// Retain policy, so that deleting that copy never deletes the source's data; the copy is a
// temporary, deleted once the claim is bound (see the sweeper).
func (d *Driver) Restore(ctx context.Context, req drivers.RestoreRequest) (drivers.VolumeStatus, error) {
	src, st, err := d.readySnapshot(ctx, req.Source.Namespace, req.Source.SnapshotID)
	if err != nil || st.Phase != storkv1.VolumeSucceeded {
		return st, err
	}
	if req.TargetNamespace == src.Namespace {
		st.DataSource = snapshotSource(src.Name)
		return st, nil
	}
	content, st2, err := d.boundContent(ctx, src)
	if err != nil || content == nil {
		return st2, err
	}
	name := objectName("stork-restore", req.ID)
	w := work{kind: "Restore", namespace: req.Namespace, owner: req.Owner, claim: req.TargetNamespace + "/" + req.TargetClaim}
	vs, err := d.importSnapshot(ctx, w, content, req.TargetNamespace, name)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	out := vsStatus(vs, drivers.VolumeStatus{SnapshotID: req.Source.SnapshotID})
	if out.Phase == storkv1.VolumeSucceeded {
		out.DataSource = snapshotSource(vs.Name)
		if out.SizeBytes == 0 {
			out.SizeBytes = st.SizeBytes
		}
	}
	return out, nil
}

func snapshotSource(name string) *corev1.TypedLocalObjectReference {
	return &corev1.TypedLocalObjectReference{APIGroup: ptr.To(snapv1.GroupName), Kind: "VolumeSnapshot", Name: name}
}

// readySnapshot reads a VolumeSnapshot the driver made and says whether it can be used: a
// Succeeded status when it is ReadyToUse, a final Failed one when it is gone or failed.
func (d *Driver) readySnapshot(ctx context.Context, ns, name string) (*snapv1.VolumeSnapshot, drivers.VolumeStatus, error) {
	vs := &snapv1.VolumeSnapshot{}
	err := d.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vs)
	if apierrors.IsNotFound(err) {
		return nil, drivers.VolumeStatus{Phase: storkv1.VolumeFailed, Reason: "SnapshotNotFound",
			Message: fmt.Sprintf("VolumeSnapshot %s/%s does not exist any more", ns, name)}, nil
	}
	if err != nil {
		return nil, drivers.VolumeStatus{}, fmt.Errorf("reading VolumeSnapshot %s/%s: %w", ns, name, err)
	}
	st := vsStatus(vs, drivers.VolumeStatus{SnapshotID: name})
	if st.Phase == storkv1.VolumeInProgress {
		st.Phase = storkv1.VolumePending
	}
	return vs, st, nil
}

// boundContent reads the VolumeSnapshotContent of a ready VolumeSnapshot; nil and a failed
// status when it has no storage snapshot handle.
func (d *Driver) boundContent(ctx context.Context, vs *snapv1.VolumeSnapshot) (*snapv1.VolumeSnapshotContent, drivers.VolumeStatus, error) {
	name := ""
	if vs.Status != nil {
		name = ptr.Deref(vs.Status.BoundVolumeSnapshotContentName, "")
	}
	content := &snapv1.VolumeSnapshotContent{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: name}, content); err != nil {
		if apierrors.IsNotFound(err) || name == "" {
			return nil, drivers.VolumeStatus{Phase: storkv1.VolumeFailed, Reason: "SnapshotNotFound",
				Message: fmt.Sprintf("VolumeSnapshot %s is bound to VolumeSnapshotContent %q, which does not exist", keyOf(vs), name)}, nil
		}
		return nil, drivers.VolumeStatus{}, fmt.Errorf("reading VolumeSnapshotContent %s: %w", name, err)
	}
	if content.Status == nil || ptr.Deref(content.Status.SnapshotHandle, "") == "" {
		return nil, drivers.VolumeStatus{Phase: storkv1.VolumeFailed, Reason: "SnapshotNotFound",
			Message: fmt.Sprintf("VolumeSnapshotContent %s has no snapshot handle", name)}, nil
	}
	return content, drivers.VolumeStatus{}, nil
}

// importSnapshot makes (unless they exist) a VolumeSnapshot ns/name and a pre-provisioned
// VolumeSnapshotContent of the same name bound to it, pointing at content's storage snapshot
// with the Retain policy, both marked as temporaries of w. It returns the VolumeSnapshot as
// stored.
func (d *Driver) importSnapshot(ctx context.Context, w work, content *snapv1.VolumeSnapshotContent, ns, name string) (*snapv1.VolumeSnapshot, error) {
	vsc := &snapv1.VolumeSnapshotContent{
		ObjectMeta: w.meta("", name),
		Spec: snapv1.VolumeSnapshotContentSpec{
			VolumeSnapshotRef:       corev1.ObjectReference{Kind: "VolumeSnapshot", APIVersion: snapv1.SchemeGroupVersion.String(), Namespace: ns, Name: name},
			DeletionPolicy:          snapv1.VolumeSnapshotContentRetain,
			Driver:                  content.Spec.Driver,
			VolumeSnapshotClassName: content.Spec.VolumeSnapshotClassName,
			Source:                  snapv1.VolumeSnapshotContentSource{SnapshotHandle: content.Status.SnapshotHandle},
			SourceVolumeMode:        content.Spec.SourceVolumeMode,
		},
	}
	if err := d.c.Create(ctx, vsc); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating VolumeSnapshotContent %s for snapshot handle %s: %w", name, *content.Status.SnapshotHandle, err)
	}
	vs := &snapv1.VolumeSnapshot{
		ObjectMeta: w.meta(ns, name),
		Spec: snapv1.VolumeSnapshotSpec{
			Source:                  snapv1.VolumeSnapshotSource{VolumeSnapshotContentName: ptr.To(name)},
			VolumeSnapshotClassName: content.Spec.VolumeSnapshotClassName,
		},
	}
	if err := d.c.Create(ctx, vs); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating VolumeSnapshot %s/%s: %w", ns, name, err)
	}
	got := &snapv1.VolumeSnapshot{}
	if err := d.c.Get(ctx, client.ObjectKeyFromObject(vs), got); err != nil {
		return vs, nil // not in the cache yet: no status to read
	}
	return got, nil
}

// work identifies the Stork object (Backup or Restore) that temporaries are made for.
type work struct {
	kind      string
	namespace string
	owner     *metav1.OwnerReference
	// claim, for a restore, is the target claim (namespace/name) the temporaries serve.
	claim string
}

// meta is the metadata of a temporary of w.
func (w work) meta(ns, name string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels:      map[string]string{LabelTemporary: "true"},
		Annotations: map[string]string{AnnWorkKind: w.kind, AnnWorkNamespace: w.namespace}}
	if w.owner != nil {
		m.Annotations[AnnWorkName], m.Annotations[AnnWorkUID] = w.owner.Name, string(w.owner.UID)
	}
	if w.claim != "" {
		m.Annotations[AnnForClaim] = w.claim
	}
	return m
}
