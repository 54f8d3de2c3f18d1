package csi

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// reasonSlot is the reason of work waiting for the mover limits.
const reasonSlot = "WaitingForMoverSlot"

// chooseNode picks the node for a new mover pod: a Ready, schedulable node that can mount the
// claim's volume (the volume's own node affinity once it is provisioned, else the job's zone
// and region, and the CSI driver registered in its CSINode), with the fewest mover pods, under
// csi.moverMaxPerNode, while fewer than csi.moverMax run in the cluster. Placing the pod itself
// is what makes the per-node limit exact; the scheduler still checks resources.
//
// It returns "" with a reason and why when the pod must wait: WaitingForMoverSlot (limits),
// WaitingForVolume (an Immediate claim not provisioned yet), or drivers.ReasonNoHealthyStorage
// when no node can take it now, so that a restore's storage wait applies. Counting reads the API server, not a cache,
// so that two pods started a moment apart both count.
func (d *Driver) chooseNode(ctx context.Context, claim *corev1.PersistentVolumeClaim, job moverJob) (node, reason, why string, err error) {
	var pods corev1.PodList
	if err := d.api.List(ctx, &pods, client.InNamespace(d.cfg.namespace), client.MatchingLabels{LabelMover: "true"}); err != nil {
		return "", "", "", fmt.Errorf("counting mover pods: %w", err)
	}
	perNode, total := map[string]int{}, 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		total++
		perNode[p.Labels[LabelMoverNode]]++
	}
	moverPodsRunning.Set(float64(total))
	if total >= d.cfg.maxTotal {
		return "", reasonSlot, fmt.Sprintf("%d mover pods are running, as many as %s=%d allows; waiting for one to finish", total, ConfigMoverMax, d.cfg.maxTotal), nil
	}
	var sel *nodeaffinity.LazyErrorNodeSelector
	if claim.Spec.VolumeName != "" {
		pv := &corev1.PersistentVolume{}
		if err := d.api.Get(ctx, client.ObjectKey{Name: claim.Spec.VolumeName}, pv); err != nil {
			return "", "", "", fmt.Errorf("reading the volume %s of temporary claim %s: %w", claim.Spec.VolumeName, keyOf(claim), err)
		}
		if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
			sel = nodeaffinity.NewLazyErrorNodeSelector(pv.Spec.NodeAffinity.Required)
		}
	} else if wait, err := d.provisionedFirst(ctx, claim); err != nil || wait {
		return "", "WaitingForVolume", "temporary claim " + keyOf(claim) + " is waiting for its volume to be provisioned", err
	}
	var nodes corev1.NodeList
	if err := d.c.List(ctx, &nodes); err != nil {
		return "", "", "", fmt.Errorf("listing nodes: %w", err)
	}
	sort.Slice(nodes.Items, func(i, j int) bool { return nodes.Items[i].Name < nodes.Items[j].Name })
	best, bestCount, fit := "", 0, 0
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !d.canMount(ctx, n, sel, job) {
			continue
		}
		fit++
		if c := perNode[n.Name]; c < d.cfg.maxPerNode && (best == "" || c < bestCount) {
			best, bestCount = n.Name, c
		}
	}
	switch {
	case best != "":
		return best, "", "", nil
	case fit > 0:
		return "", reasonSlot, fmt.Sprintf("the %d nodes that can mount the volume each run %s=%d mover pods; waiting for one to finish", fit, ConfigMoverMaxPerNode, d.cfg.maxPerNode), nil
	}
	return "", drivers.ReasonNoHealthyStorage, noNode(job, sel, claim.Spec.VolumeName), nil
}

// noNode says what no node is, for a job (and a provisioned volume's node affinity).
func noNode(job moverJob, sel *nodeaffinity.LazyErrorNodeSelector, volume string) string {
	where := []string{"Ready", "schedulable"}
	if job.zone != "" && sel == nil {
		where = append(where, "in zone "+job.zone)
	}
	if job.region != "" && sel == nil {
		where = append(where, "in region "+job.region)
	}
	if job.csiDriver != "" {
		where = append(where, "with CSI driver "+job.csiDriver+" registered")
	}
	if sel != nil {
		where = append(where, "matching the node affinity of volume "+volume)
	}
	return "no node is " + strings.Join(where, ", ")
}

// nodeFor picks a node that could mount a volume of the job (zone, region, CSI driver), the
// first by name; "" and why when there is none.
func (d *Driver) nodeFor(ctx context.Context, job moverJob) (string, string, error) {
	var nodes corev1.NodeList
	if err := d.c.List(ctx, &nodes); err != nil {
		return "", "", fmt.Errorf("listing nodes: %w", err)
	}
	sort.Slice(nodes.Items, func(i, j int) bool { return nodes.Items[i].Name < nodes.Items[j].Name })
	for i := range nodes.Items {
		if d.canMount(ctx, &nodes.Items[i], nil, job) {
			return nodes.Items[i].Name, "", nil
		}
	}
	return "", noNode(job, nil, ""), nil
}

// provisionedFirst reports whether the claim's volume is provisioned before a pod uses it
// (Immediate binding), so that the mover pod must wait to go where the volume landed.
func (d *Driver) provisionedFirst(ctx context.Context, claim *corev1.PersistentVolumeClaim) (bool, error) {
	name := ""
	if claim.Spec.StorageClassName != nil {
		name = *claim.Spec.StorageClassName
	}
	class := &storagev1.StorageClass{}
	if err := d.c.Get(ctx, client.ObjectKey{Name: name}, class); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return class.VolumeBindingMode == nil || *class.VolumeBindingMode == storagev1.VolumeBindingImmediate, nil
}

// canMount reports whether a mover pod on node n could mount the job's volume.
func (d *Driver) canMount(ctx context.Context, n *corev1.Node, sel *nodeaffinity.LazyErrorNodeSelector, job moverJob) bool {
	if n.Spec.Unschedulable || n.DeletionTimestamp != nil || (job.host != "" && n.Name != job.host) {
		return false
	}
	if c := nodeCondition(n, corev1.NodeReady); c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if sel != nil {
		// The volume exists: where it can be mounted is all that counts (a volume made from
		// a snapshot may be in another zone than its source).
		if ok, err := sel.Match(n); err != nil || !ok {
			return false
		}
	} else if (job.zone != "" && n.Labels[storkv1.LabelZone] != job.zone) || (job.region != "" && n.Labels[storkv1.LabelRegion] != job.region) {
		return false
	}
	if job.csiDriver == "" {
		return true
	}
	cn := &storagev1.CSINode{}
	return d.c.Get(ctx, client.ObjectKey{Name: n.Name}, cn) == nil && registered(cn, job.csiDriver)
}
