package placement

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stork.dev/stork/drivers"
)

// Pod annotations that steer placement.
const (
	// AnnotationPlacement is "skip" to leave the pod to the scheduler's own judgement, or
	// "require-local" to allow only nodes that hold a healthy copy of every volume of the pod.
	// Unset (or "prefer") prefers nodes near the data.
	AnnotationPlacement = "stork.dev/placement"

	PlacementSkip         = "skip"
	PlacementRequireLocal = "require-local"
)

// IndexPreboundClaim indexes PersistentVolumes reserved for a claim by name ("namespace/name":
// a claimRef without a UID), as restores and failovers make them. The cache behind
// Volumes.Reader must have it (see PreboundClaim).
const IndexPreboundClaim = "stork.dev/prebound-claim"

// PreboundClaim is the index function of IndexPreboundClaim.
func PreboundClaim(o client.Object) []string {
	pv, ok := o.(*corev1.PersistentVolume)
	if !ok || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != "" || pv.Spec.ClaimRef.Name == "" {
		return nil
	}
	return []string{pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name}
}

// podVolume is one of a pod's claims that a driver owns, and where its data lives.
type podVolume struct {
	claim  string
	driver string
	// located is true once the claim is bound, or a volume is reserved for it, and the driver
	// said where the data is.
	located bool
	loc     drivers.Location
	// localOnly: the claim is not bound yet but a volume with node affinity is reserved for it;
	// on any node without a copy the scheduler would provision it a new, empty volume.
	localOnly bool
}

// Volumes finds a pod's claims and their drivers from the cache.
type Volumes struct {
	// Reader reads claims, volumes and storage classes; it must be a cache.
	Reader  client.Reader
	Drivers *drivers.Set
}

// Of returns the pod's claims that an enabled driver owns. Claims that do not exist yet are
// left to kube-scheduler, which waits for them.
func (r *Volumes) Of(ctx context.Context, pod *corev1.Pod) ([]podVolume, error) {
	var out []podVolume
	for _, vol := range pod.Spec.Volumes {
		if vol.PersistentVolumeClaim == nil {
			continue
		}
		v, err := r.Volume(ctx, pod.Namespace, vol.PersistentVolumeClaim.ClaimName)
		if err != nil {
			return nil, err
		}
		if v.Claim == nil {
			continue
		}
		d, err := r.Drivers.For(v)
		if err != nil {
			continue // not Stork's storage: nothing to say about it
		}
		pv := podVolume{claim: v.Claim.Name, driver: d.Name()}
		if v.PV != nil {
			pv.localOnly = v.Claim.Spec.VolumeName == "" && v.PV.Spec.NodeAffinity != nil
			if pv.loc, err = d.Locate(ctx, v); err != nil {
				return nil, fmt.Errorf("locating the data of claim %s/%s: %w", pod.Namespace, v.Claim.Name, err)
			}
			pv.located = true
		}
		out = append(out, pv)
	}
	return out, nil
}

// Volume reads a claim from the cache with its volume (the bound one, or one reserved for the
// claim by name) and its storage class; Claim is nil when the claim does not exist (yet). The
// extender, the monitor and the pod webhook all see a pod's claims through it.
func (r *Volumes) Volume(ctx context.Context, ns, name string) (drivers.Volume, error) {
	var v drivers.Volume
	claim := &corev1.PersistentVolumeClaim{}
	if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, claim); err != nil {
		if apierrors.IsNotFound(err) {
			return v, nil
		}
		return v, fmt.Errorf("reading PersistentVolumeClaim %s/%s: %w", ns, name, err)
	}
	v.Claim = claim
	if claim.Spec.VolumeName == "" {
		var reserved corev1.PersistentVolumeList
		if err := r.Reader.List(ctx, &reserved, client.MatchingFields{IndexPreboundClaim: ns + "/" + name}); err != nil {
			return v, fmt.Errorf("looking for a PersistentVolume reserved for PersistentVolumeClaim %s/%s: %w", ns, name, err)
		}
		if len(reserved.Items) == 1 {
			v.PV = &reserved.Items[0]
		}
	} else {
		pv := &corev1.PersistentVolume{}
		switch err := r.Reader.Get(ctx, client.ObjectKey{Name: claim.Spec.VolumeName}, pv); {
		case err == nil:
			v.PV = pv
		case !apierrors.IsNotFound(err):
			return v, fmt.Errorf("reading PersistentVolume %s of PersistentVolumeClaim %s/%s: %w", claim.Spec.VolumeName, ns, name, err)
		}
	}
	if class := storageClassName(claim); class != "" {
		sc := &storagev1.StorageClass{}
		switch err := r.Reader.Get(ctx, client.ObjectKey{Name: class}, sc); {
		case err == nil:
			v.StorageClass = sc
		case !apierrors.IsNotFound(err):
			return v, fmt.Errorf("reading StorageClass %s of PersistentVolumeClaim %s/%s: %w", class, ns, name, err)
		}
	}
	return v, nil
}

// storageClassName is the claim's class, from the field or the older beta annotation.
func storageClassName(c *corev1.PersistentVolumeClaim) string {
	if c.Spec.StorageClassName != nil {
		return *c.Spec.StorageClassName
	}
	return c.Annotations[corev1.BetaStorageClassAnnotation]
}

// describeReplicas says where a volume's copies are and how they are, for messages.
func describeReplicas(loc drivers.Location, view *View, driver string) string {
	if len(loc.Replicas) == 0 {
		return "no replicas"
	}
	parts := make([]string, 0, len(loc.Replicas))
	for _, r := range loc.Replicas {
		state := "healthy"
		if sn, ok := view.Storage(driver, r.Node); ok && !usable(sn.Health) {
			state = "storage " + string(sn.Health)
		} else if !r.Healthy {
			state = "replica not healthy"
		}
		parts = append(parts, r.Node+" ("+state+")")
	}
	return strings.Join(parts, ", ")
}
