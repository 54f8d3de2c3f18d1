package local

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

var _ drivers.Discarder = (*Driver)(nil)

// Discard implements drivers.Discarder for the volume a Restore or Download task made for
// request req.ID (volumes/stork-restore-… on a node, and its PersistentVolume):
//
//  1. a PersistentVolume bound to a claim that exists was handed over: Failed HandedOver;
//  2. a DeleteVolume task is made on the volume's node, which the making task or the
//     PersistentVolume names (nothing was made when neither exists: Succeeded);
//  3. the making tasks are deleted: the agent stops one that runs and never starts one gone;
//     the DeleteVolume task waits for them to be gone, so nothing is published after it;
//  4. the PersistentVolume is deleted (the admission policy stork-controller-volumes lets the
//     controller delete only restored volumes);
//  5. the DeleteVolume task's status is the result.
//
// Every step is repeated on every call until the task reports, like the driver's other calls.
func (d *Driver) Discard(ctx context.Context, req drivers.DiscardRequest) (drivers.VolumeStatus, error) {
	pvName := taskName("stork-restore", req.ID)
	pv := &corev1.PersistentVolume{}
	switch err := d.c.Get(ctx, client.ObjectKey{Name: pvName}, pv); {
	case apierrors.IsNotFound(err):
		pv = nil
	case err != nil:
		return drivers.VolumeStatus{}, fmt.Errorf("reading PersistentVolume %s: %w", pvName, err)
	default:
		if claim, err := d.boundClaim(ctx, pv); err != nil || claim != "" {
			return drivers.VolumeStatus{VolumeName: pvName, Phase: storkv1.VolumeFailed, Reason: "HandedOver",
				Message: "PersistentVolume " + pvName + " is bound to claim " + claim + ": it is the claim's, and not discarded"}, err
		}
	}
	node := VolumeNode(pv)
	var makers []*storkv1.VolumeTask
	for _, prefix := range []string{"restore", "download"} {
		t := &storkv1.VolumeTask{}
		switch err := d.c.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: taskName(prefix, req.ID)}, t); {
		case err == nil:
			makers = append(makers, t)
			if node == "" {
				node = t.Spec.NodeName
			}
		case !apierrors.IsNotFound(err):
			return drivers.VolumeStatus{}, fmt.Errorf("reading the task that made volume %s: %w", pvName, err)
		}
	}
	del := &storkv1.VolumeTask{}
	delKey := client.ObjectKey{Namespace: req.Namespace, Name: taskName("delete-volume", req.ID)}
	switch err := d.c.Get(ctx, delKey, del); {
	case apierrors.IsNotFound(err) && node == "":
		return drivers.VolumeStatus{VolumeName: pvName, Phase: storkv1.VolumeSucceeded, Reason: drivers.ReasonNothingMade, Message: "nothing was made"}, nil
	case apierrors.IsNotFound(err):
		if del, err = d.ensureTask(ctx, &storkv1.VolumeTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: delKey.Namespace, Name: delKey.Name},
			Spec:       storkv1.VolumeTaskSpec{Type: storkv1.TaskDeleteVolume, NodeName: node, VolumeName: pvName},
		}, req.Owner); err != nil {
			return drivers.VolumeStatus{}, err
		}
	case err != nil:
		return drivers.VolumeStatus{}, fmt.Errorf("reading VolumeTask %s: %w", delKey, err)
	}
	for _, t := range makers {
		if err := d.c.Delete(ctx, t); client.IgnoreNotFound(err) != nil {
			return drivers.VolumeStatus{}, fmt.Errorf("deleting VolumeTask %s/%s to stop it: %w", t.Namespace, t.Name, err)
		}
	}
	if pv != nil {
		if err := d.c.Delete(ctx, pv, client.Preconditions{UID: &pv.UID}); client.IgnoreNotFound(err) != nil {
			return drivers.VolumeStatus{}, fmt.Errorf("deleting PersistentVolume %s: %w", pvName, err)
		}
	}
	st := statusOf(del, pvName)
	if st.Phase == storkv1.VolumeSucceeded {
		st.Reason, st.Message = drivers.ReasonDiscarded, "volume "+pvName+" removed from node "+del.Spec.NodeName
	}
	return st, nil
}

// boundClaim names the claim pv is bound to, if that claim exists and is bound to it.
func (d *Driver) boundClaim(ctx context.Context, pv *corev1.PersistentVolume) (string, error) {
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.UID == "" {
		return "", nil // pre-bound by name only: no claim took it yet
	}
	pvc := &corev1.PersistentVolumeClaim{}
	switch err := d.c.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, pvc); {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading claim %s/%s of PersistentVolume %s: %w", ref.Namespace, ref.Name, pv.Name, err)
	case pvc.UID == ref.UID && pvc.Spec.VolumeName == pv.Name:
		return ref.Namespace + "/" + ref.Name, nil
	}
	return "", nil
}
