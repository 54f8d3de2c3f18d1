package placement

import (
	"slices"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// table is the View flattened for the extender's loops, built by each Refresh and then only
// read. A scheduling request turns its node names into rows once; from then on it compares
// small integers and indexes slices, where it used to hash and compare strings for every node
// and volume (thousands of times per request: docs/performance.md, make bench-extender).
type table struct {
	rows map[string]int32
	// names[row] is the node's name.
	names []string
	// topo[row] is the node's region, zone and rack as ids (0: unknown).
	topo []topoIDs
	// health[driver][row] is the driver's storage health on the node ("" when it has none).
	health map[string][]storkv1.StorageHealth
	// ids numbers the topology labels (region, zone and rack values); "" is 0.
	ids map[string]int32
}

// topoIDs is a Topology with each label replaced by a small id (0 when unset).
type topoIDs struct{ region, zone, rack int32 }

// buildTable flattens the node topologies and the drivers' storage nodes.
func buildTable(nodes map[string]storkv1.Topology, storage map[string]driverView) *table {
	t := &table{rows: make(map[string]int32, len(nodes)), health: map[string][]storkv1.StorageHealth{}}
	ids := map[string]int32{"": 0}
	id := func(s string) int32 {
		if n, ok := ids[s]; ok {
			return n
		}
		n := int32(len(ids))
		ids[s] = n
		return n
	}
	add := func(name string, topo storkv1.Topology) {
		if _, ok := t.rows[name]; ok {
			return
		}
		t.rows[name] = int32(len(t.topo))
		t.names = append(t.names, name)
		t.topo = append(t.topo, topoIDs{id(topo.Region), id(topo.Zone), id(topo.Rack)})
	}
	for name, topo := range nodes {
		if topo == (storkv1.Topology{}) {
			topo = storageTopology(storage, name) // a node without labels: what its storage says
		}
		add(name, topo)
	}
	for _, d := range storage {
		for name, sn := range d.nodes {
			add(name, sn.Topology) // storage on a node the informer has not shown yet
		}
	}
	for driver, d := range storage {
		h := make([]storkv1.StorageHealth, len(t.topo))
		for name, sn := range d.nodes {
			h[t.rows[name]] = sn.Health
		}
		t.health[driver] = h
	}
	t.ids = ids // copies' topologies are numbered with the same dictionary (idsOf)
	return t
}

func storageTopology(storage map[string]driverView, node string) storkv1.Topology {
	for _, d := range storage {
		if n, ok := d.nodes[node]; ok && n.Topology != (storkv1.Topology{}) {
			return n.Topology
		}
	}
	return storkv1.Topology{}
}

// lookup appends the row of each node to dst: -1 for a node the table does not know (added
// since the last refresh), which is then scored as having no known topology or storage.
func (t *table) lookup(nodes []string, dst []int32) []int32 {
	out := slices.Grow(dst[:0], len(nodes))[:len(nodes)]
	for i, n := range nodes {
		if r, ok := t.rows[n]; ok {
			out[i] = r
		} else {
			out[i] = -1
		}
	}
	return out
}

// health of each volume's driver: its health by row, or nil when it reports no storage nodes.
func (t *table) healthOf(vols []podVolume) [][]storkv1.StorageHealth {
	out := make([][]storkv1.StorageHealth, len(vols))
	for i, v := range vols {
		out[i] = t.health[v.driver]
	}
	return out
}

// topology of a row (zero ids for -1).
func (t *table) topology(row int32) topoIDs {
	if row < 0 {
		return topoIDs{}
	}
	return t.topo[row]
}

// idsOf turns a copy's topology into ids; a label no node has gets an id no node matches.
func (t *table) idsOf(topo storkv1.Topology) topoIDs {
	get := func(s string) int32 {
		if n, ok := t.ids[s]; ok {
			return n
		}
		return -1
	}
	return topoIDs{get(topo.Region), get(topo.Zone), get(topo.Rack)}
}

// usableOn reports whether a driver's storage (health by row) on the row is not known to be down.
func usableOn(h []storkv1.StorageHealth, row int32) bool {
	return row < 0 || h == nil || h[row] == "" || usable(h[row])
}
