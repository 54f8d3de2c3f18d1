package placement

import (
	"math"

	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// Points a node earns for one volume, by how close it is to the volume's nearest usable copy
// (Stork's classic 100/50/25/10). A pod's score is the mean over its volumes, scaled into the
// extender protocol's 0..10 with ceil(mean/10):
//
//	copy on the node          100 → 10
//	copy on a degraded node    50 →  5   (degraded storage halves the points)
//	same rack                  50 →  5
//	same zone                  25 →  3
//	same region                10 →  1
//	no data nearby              5 →  1   (low, never zero: the pod can still run there)
//
// kube-scheduler multiplies an extender's score by its weight and by 10 (MaxNodeScore /
// MaxExtenderPriority); deploy/ uses weight 5, so a data-local node gets 500 points, more
// than any single in-tree plugin (at most 100 × its weight of 1 to 2) can outweigh.
const (
	pointsReplica = 100
	pointsRack    = 50
	pointsZone    = 25
	pointsRegion  = 10
	pointsNoData  = 5
)

// replicaState reports whether a copy can serve I/O now (its own health and its node's storage
// health for the driver) and whether that storage is degraded.
func (v *View) replicaState(driver string, r drivers.Replica) (usableNow, degraded bool) {
	if !r.Healthy {
		return false, false
	}
	sn, known := v.Storage(driver, r.Node)
	if !known {
		return true, false
	}
	return usable(sn.Health), sn.Health == storkv1.StorageDegraded
}

// usableCopy is a copy of a volume that can serve I/O now, resolved once per request so that
// scoring thousands of nodes is string comparisons only.
type usableCopy struct {
	node     string
	topology storkv1.Topology
	degraded bool
}

// usableCopies lists the copies of a located volume that can serve I/O now.
func (v *View) usableCopies(driver string, loc drivers.Location) []usableCopy {
	out := make([]usableCopy, 0, len(loc.Replicas))
	for _, r := range loc.Replicas {
		ok, degraded := v.replicaState(driver, r)
		if !ok {
			continue
		}
		rt := r.Topology
		if rt == (storkv1.Topology{}) {
			rt = v.Topology(r.Node)
		}
		out = append(out, usableCopy{node: r.Node, topology: rt, degraded: degraded})
	}
	return out
}

// points is what node (with topology nt) earns for one volume, given its usable copies.
func points(node string, nt storkv1.Topology, copies []usableCopy, loc drivers.Location) int {
	best := pointsNoData
	for _, c := range copies {
		p := closeness(node, nt, c.node, c.topology)
		if c.degraded {
			p /= 2
		}
		best = max(best, p)
	}
	if len(loc.Replicas) == 0 && loc.Topology != (storkv1.Topology{}) {
		// Storage reachable from a whole zone or region: being there is what counts.
		best = max(best, closeness(node, nt, "", loc.Topology))
	}
	return best
}

// closeness scores a node against where a copy lives.
func closeness(node string, nt storkv1.Topology, copyNode string, ct storkv1.Topology) int {
	sameRegion := nt.Region == "" || ct.Region == "" || nt.Region == ct.Region
	switch {
	case copyNode != "" && node == copyNode:
		return pointsReplica
	case !sameRegion:
		return 0
	case nt.Zone != "" && nt.Zone == ct.Zone && nt.Rack != "" && nt.Rack == ct.Rack:
		return pointsRack
	case nt.Zone != "" && nt.Zone == ct.Zone:
		return pointsZone
	case nt.Region != "" && nt.Region == ct.Region:
		return pointsRegion
	}
	return 0
}

// scale turns the mean points over n volumes into the protocol's 0..10.
func scale(sum, n int) int64 {
	if n == 0 {
		return 0
	}
	s := int64(math.Ceil(float64(sum) / float64(n) / 10))
	return min(max(s, extenderv1.MinExtenderPriority), extenderv1.MaxExtenderPriority)
}

// hasUsableCopy reports whether a volume with replicas has at least one that can serve I/O.
// Volumes without node replicas (zonal storage) always do as far as placement can tell.
func (v *View) hasUsableCopy(driver string, loc drivers.Location) bool {
	if len(loc.Replicas) == 0 {
		return true
	}
	for _, r := range loc.Replicas {
		if ok, _ := v.replicaState(driver, r); ok {
			return true
		}
	}
	return false
}
