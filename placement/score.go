package placement

import (
	"slices"

	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// How nodes are scored (Prioritize). For each of the pod's volumes a node earns points by where
// the volume's nearest usable copy is (Stork's classic 100/50/25/10):
//
//	copy on the node          100
//	copy on a degraded node    50   (degraded storage halves the points)
//	same rack                  50
//	same zone                  25
//	same region                10
//	nothing nearby              5
//
// A node's rank key is, first, how many of the pod's volumes it holds a copy of (degraded or
// not), then the sum of its points: a node holding more of the pod's volumes always beats one
// holding fewer, and between two holding as many, the closer one wins. The extender protocol
// has only the scores 0..10, and a mean of points scaled into them ties levels (region and
// nothing nearby both became 1). So the candidates of one request are ranked by key and their
// distinct keys score rankScore: 10, then 3, 2, 1, and 0 for every key further down (a score
// says nothing of whether the pod can run there; filter does). Every locality level (node, rack,
// zone, region, nothing) scores strictly above the next.
//
// kube-scheduler multiplies an extender's score by its weight and by 10 (MaxNodeScore /
// MaxExtenderPriority); deploy/ uses weight 5, so the best node gets 500 points and the next at
// most 150: a lead of 350 that the default plugins' spreading and balancing cannot undo (e2e
// TestPlacement saw leads of 100 and 250 undone).
const (
	pointsReplica = 100
	pointsRack    = 50
	pointsZone    = 25
	pointsRegion  = 10
	pointsNoData  = 5

	// heldWeight makes the count of volumes held the first part of a rank key: no sum of
	// points over a pod's volumes reaches it.
	heldWeight = 1 << 32
)

// rankScore is the score of the rank-th best distinct key of a request (0: the best).
func rankScore(rank int) int64 {
	if rank == 0 {
		return extenderv1.MaxExtenderPriority
	}
	return max(4-int64(rank), 0)
}

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
// scoring thousands of nodes compares integers only. A volume on storage that a whole zone
// or region reaches (no node replicas) has one copy with row noRow and that topology.
type usableCopy struct {
	node     string
	row      int32
	topo     topoIDs
	degraded bool
}

// noRow is the row of a copy that is not on a node.
const noRow = -2

// usableCopies lists the copies of a located volume that can serve I/O now.
func (v *View) usableCopies(t *table, driver string, loc drivers.Location) []usableCopy {
	out := make([]usableCopy, 0, len(loc.Replicas)+1)
	for _, r := range loc.Replicas {
		ok, degraded := v.replicaState(driver, r)
		if !ok {
			continue
		}
		c := usableCopy{node: r.Node, row: -1, degraded: degraded}
		// The node's labels say where the copy is; what the driver reports (Longhorn knows
		// zones, not racks) only stands in for a node the table does not know.
		if row, known := t.rows[r.Node]; known {
			c.row, c.topo = row, t.topology(row)
		} else {
			c.topo = t.idsOf(r.Topology)
		}
		out = append(out, c)
	}
	if len(loc.Replicas) == 0 && loc.Topology != (storkv1.Topology{}) {
		out = append(out, usableCopy{row: noRow, topo: t.idsOf(loc.Topology)})
	}
	return out
}

// on reports whether the copy is on the node (row, or name for nodes the table does not know).
func (c usableCopy) on(row int32, name string) bool {
	if row >= 0 || c.row >= 0 {
		return row == c.row
	}
	return c.row == -1 && c.node == name
}

// points is what a node (row, name, topology ids) earns for one volume, given its usable
// copies, and whether it holds one of them.
func points(row int32, name string, nt topoIDs, copies []usableCopy) (best int, holds bool) {
	best = pointsNoData
	for _, c := range copies {
		on := c.on(row, name)
		p := closeness(on, nt, c.topo)
		if c.degraded && on {
			// Local I/O on degraded storage is slower; to a remote node, every copy is remote.
			p /= 2
		}
		best, holds = max(best, p), holds || on
	}
	return best, holds
}

// closeness scores a node against where a copy lives. Ids are positive for known labels, 0
// for unset ones and negative for labels no node has.
func closeness(onNode bool, nt, ct topoIDs) int {
	sameRegion := nt.region == 0 || ct.region == 0 || nt.region == ct.region
	switch {
	case onNode:
		return pointsReplica
	case !sameRegion:
		return 0
	case nt.zone > 0 && nt.zone == ct.zone && nt.rack > 0 && nt.rack == ct.rack:
		return pointsRack
	case nt.zone > 0 && nt.zone == ct.zone:
		return pointsZone
	case nt.region > 0 && nt.region == ct.region:
		return pointsRegion
	}
	return 0
}

// rankScores sets each node's score from its rank key (keys[i] for out[i]) by the rank of the key
// among the distinct keys (rankScore). sorted is scratch space.
func rankScores(out extenderv1.HostPriorityList, keys, sorted []int64) []int64 {
	sorted = append(sorted[:0], keys...)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	top := len(sorted) - 1
	for i, k := range keys {
		rank, _ := slices.BinarySearch(sorted, k)
		out[i].Score = rankScore(top - rank)
	}
	return sorted
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
