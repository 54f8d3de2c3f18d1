package longhorn

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// Kinds of the Longhorn objects the index reads.
const (
	kindVolume  = "Volume"
	kindReplica = "Replica"
	kindNode    = "Node"
)

// replica is what the index keeps of a Replica.
type replica struct {
	name   string
	volume string
	// node is empty while the replica is not scheduled.
	node string
	// errored is status.currentState == "error". Other states count as holding the data:
	// Longhorn stops every replica of a detached volume ("stopped"), and a volume that no pod
	// uses must still be schedulable where its replicas are.
	errored bool
	// failed is spec.failedAt != "".
	failed bool
}

// index is the parsed view of Longhorn's objects, kept by the informers' handlers. All names
// are object names: the informers watch one namespace, where names are unique.
type index struct {
	mu sync.RWMutex
	// nodes are the parsed Node objects, by name (that of the Kubernetes node).
	nodes map[string]drivers.StorageNode
	// robustness of each Volume, by volume name.
	robustness map[string]string
	// replicas by replica name, and again grouped by volume so that Locate does not scan.
	replicas map[string]*replica
	byVolume map[string]map[string]*replica
}

func newIndex() *index {
	return &index{
		nodes:      map[string]drivers.StorageNode{},
		robustness: map[string]string{},
		replicas:   map[string]*replica{},
		byVolume:   map[string]map[string]*replica{},
	}
}

// observe records obj, a Longhorn object of the given kind, replacing what was known of it.
// Objects of other kinds are ignored.
func (x *index) observe(kind string, obj *unstructured.Unstructured) {
	// Parsed before taking the lock: parsing a Node with many disks is the slow part.
	switch kind {
	case kindVolume:
		rob := str(obj.Object, "status", "robustness")
		x.mu.Lock()
		x.robustness[obj.GetName()] = rob
		x.mu.Unlock()
	case kindReplica:
		r := parseReplica(obj)
		x.mu.Lock()
		x.removeReplicaLocked(r.name)
		x.replicas[r.name] = r
		if r.volume != "" {
			set := x.byVolume[r.volume]
			if set == nil {
				set = map[string]*replica{}
				x.byVolume[r.volume] = set
			}
			set[r.name] = r
		}
		x.mu.Unlock()
	case kindNode:
		n := parseNode(obj)
		x.mu.Lock()
		x.nodes[n.Node] = n
		x.mu.Unlock()
	}
}

// forget removes obj, a Longhorn object of the given kind. Only its name is read, so a
// tombstone's last known state is enough.
func (x *index) forget(kind string, obj *unstructured.Unstructured) {
	name := obj.GetName()
	x.mu.Lock()
	defer x.mu.Unlock()
	switch kind {
	case kindVolume:
		delete(x.robustness, name)
	case kindReplica:
		x.removeReplicaLocked(name)
	case kindNode:
		delete(x.nodes, name)
	}
}

// removeReplicaLocked drops a replica from both maps; x.mu must be held for writing.
func (x *index) removeReplicaLocked(name string) {
	old, ok := x.replicas[name]
	if !ok {
		return
	}
	delete(x.replicas, name)
	if set := x.byVolume[old.volume]; set != nil {
		delete(set, name)
		if len(set) == 0 {
			delete(x.byVolume, old.volume)
		}
	}
}

// storageNodes lists the nodes, sorted by name.
func (x *index) storageNodes() []drivers.StorageNode {
	x.mu.RLock()
	out := make([]drivers.StorageNode, 0, len(x.nodes))
	for _, n := range x.nodes {
		out = append(out, n)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b drivers.StorageNode) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// locate returns where the named Longhorn volume's replicas are: one entry per node (healthy if
// any of the volume's replicas there is), healthy first, then by node name.
func (x *index) locate(volume string) drivers.Location {
	x.mu.RLock()
	set := x.byVolume[volume]
	reps := make([]drivers.Replica, 0, len(set))
	for _, r := range set {
		if r.node == "" {
			continue // not scheduled yet: it holds no data anywhere
		}
		n, known := x.nodes[r.node]
		// A replica's data is only as reachable as its node: one on a node Longhorn reports
		// down, or has no (or no ready) Node for, cannot serve I/O now.
		healthy := !r.errored && !r.failed && known && n.Health != storkv1.StorageDown && n.Health != storkv1.StorageUnknown
		if i := slices.IndexFunc(reps, func(p drivers.Replica) bool { return p.Node == r.node }); i >= 0 {
			// Two replicas on one node (soft anti-affinity) are one copy for placement.
			reps[i].Healthy = reps[i].Healthy || healthy
			continue
		}
		reps = append(reps, drivers.Replica{Node: r.node, Topology: n.Topology, Healthy: healthy})
	}
	faulted := x.robustness[volume] == "faulted"
	x.mu.RUnlock()
	if len(reps) == 0 {
		return drivers.Location{}
	}
	if faulted {
		// Longhorn found no replica it can use: none is a copy placement can count on.
		for i := range reps {
			reps[i].Healthy = false
		}
	}
	slices.SortFunc(reps, func(a, b drivers.Replica) int {
		if a.Healthy != b.Healthy {
			if a.Healthy {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Node, b.Node)
	})
	loc := drivers.Location{Replicas: reps}
	// The volume is confined to a zone when every replica is in the same one.
	t := reps[0].Topology
	for _, r := range reps[1:] {
		if r.Topology.Zone != t.Zone || r.Topology.Region != t.Region {
			return loc
		}
	}
	if t.Zone != "" {
		loc.Topology = storkv1.Topology{Region: t.Region, Zone: t.Zone}
	}
	return loc
}

// volumeRobustness returns the Volume's status.robustness, "" when unknown.
func (x *index) volumeRobustness(volume string) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.robustness[volume]
}

func parseReplica(obj *unstructured.Unstructured) *replica {
	return &replica{
		name:    obj.GetName(),
		volume:  str(obj.Object, "spec", "volumeName"),
		node:    str(obj.Object, "spec", "nodeID"),
		errored: str(obj.Object, "status", "currentState") == "error",
		failed:  str(obj.Object, "spec", "failedAt") != "",
	}
}

// Longhorn's condition types, on Nodes and on their disks.
const (
	condReady       = "Ready"
	condSchedulable = "Schedulable"
)

// parseNode turns a Longhorn Node into a storage node: Down when Longhorn says the node is not
// ready, Unknown when it says nothing (yet), Degraded when new replicas cannot go there (the
// node or one of its disks is unschedulable or not ready), Healthy otherwise.
func parseNode(obj *unstructured.Unstructured) drivers.StorageNode {
	n := drivers.StorageNode{
		Node: obj.GetName(),
		Topology: storkv1.Topology{
			Region: str(obj.Object, "status", "region"),
			Zone:   str(obj.Object, "status", "zone"),
		},
	}
	var down, unknown, degraded []string
	conds := conditionsOf(field(obj.Object, "status", "conditions"))
	switch ready, ok := conds[condReady]; {
	case !ok:
		unknown = append(unknown, "Longhorn reports no Ready condition for the node")
	case ready.status == "False":
		down = append(down, ready.describe(condReady))
	case ready.status != "True":
		unknown = append(unknown, ready.describe(condReady))
	}
	if s, ok := conds[condSchedulable]; ok && s.status == "False" {
		degraded = append(degraded, s.describe(condSchedulable))
	}
	if allow, found, err := unstructured.NestedBool(obj.Object, "spec", "allowScheduling"); err == nil && found && !allow {
		degraded = append(degraded, "scheduling is disabled on the node (spec.allowScheduling is false)")
	}
	if disks, ok := field(obj.Object, "status", "diskStatus").(map[string]any); ok {
		names := make([]string, 0, len(disks))
		for name := range disks {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			disk, ok := disks[name].(map[string]any)
			if !ok {
				continue
			}
			n.Capacity.TotalBytes += toInt64(disk["storageMaximum"])
			n.Capacity.FreeBytes += toInt64(disk["storageAvailable"])
			dc := conditionsOf(disk["conditions"])
			for _, t := range []string{condReady, condSchedulable} {
				if c, ok := dc[t]; ok && c.status == "False" {
					degraded = append(degraded, "disk "+name+" "+c.describe(t))
				}
			}
		}
	}
	switch {
	case len(down) > 0:
		n.Health = storkv1.StorageDown
	case len(unknown) > 0:
		n.Health = storkv1.StorageUnknown
	case len(degraded) > 0:
		n.Health = storkv1.StorageDegraded
	default:
		n.Health = storkv1.StorageHealthy
	}
	n.Reason = strings.Join(slices.Concat(down, unknown, degraded), "; ")
	return n
}

// condition is one of Longhorn's conditions.
type condition struct {
	status, reason, message string
}

// describe says what the condition of type t reports, for a person: "Ready: <message>".
func (c condition) describe(t string) string {
	switch {
	case c.message != "":
		return t + ": " + c.message
	case c.reason != "":
		return t + ": " + c.reason
	}
	return t + " is " + cmp.Or(c.status, "not reported")
}

// conditionsOf reads conditions by type from a list of {type, status, reason, message} (Longhorn
// v1beta2) or from a map keyed by type (older releases). Anything else reads as none.
func conditionsOf(raw any) map[string]condition {
	out := map[string]condition{}
	read := func(key string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		t, _ := m["type"].(string)
		if t == "" {
			t = key
		}
		if t == "" {
			return
		}
		s, _ := m["status"].(string)
		r, _ := m["reason"].(string)
		msg, _ := m["message"].(string)
		out[t] = condition{status: s, reason: r, message: msg}
	}
	switch cs := raw.(type) {
	case []any:
		for _, c := range cs {
			read("", c)
		}
	case map[string]any:
		for k, c := range cs {
			read(k, c)
		}
	}
	return out
}

// field returns the value at path, nil when absent.
func field(obj map[string]any, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	return v
}

// str returns the string at path, "" when absent or not a string.
func str(obj map[string]any, path ...string) string {
	s, _, _ := unstructured.NestedString(obj, path...)
	return s
}

// toInt64 reads a JSON number: int64 from the API machinery's decoder, float64 from
// encoding/json, int from objects built in Go.
func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case int32:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
}
