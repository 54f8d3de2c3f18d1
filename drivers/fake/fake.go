package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// Name is the fake driver's name, and the CSI driver / provisioner name it owns.
const Name = "fake.stork.dev"

// Driver is the in-memory driver. Its zero value is not usable: call New.
type Driver struct {
	mu sync.Mutex
	// Steps is how many calls a piece of work takes before it is final (at least 1).
	steps int
	nodes map[string]drivers.StorageNode
	// replicas by PersistentVolume name.
	replicas map[string][]string
	// work by request ID and volume.
	calls     map[string]int
	snapshots map[string]snapshot
	// FailVolumes makes snapshots of these PersistentVolumes fail, to test error paths.
	failVolumes map[string]string
	// imports are the Import requests received, for tests to check what reached the driver.
	imports []drivers.ImportRequest
}

// Imports returns the Import requests the driver received, oldest first.
func (d *Driver) Imports() []drivers.ImportRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.imports)
}

type snapshot struct {
	volume string
	node   string
	size   int64
}

var (
	_ drivers.Snapshotter = (*Driver)(nil)
	_ drivers.Restorer    = (*Driver)(nil)
	_ drivers.Exporter    = (*Driver)(nil)
	_ drivers.Importer    = (*Driver)(nil)
)

// New returns a driver whose work finishes on the steps-th call.
func New(steps int) *Driver {
	if steps < 1 {
		steps = 1
	}
	return &Driver{
		steps:       steps,
		nodes:       map[string]drivers.StorageNode{},
		replicas:    map[string][]string{},
		calls:       map[string]int{},
		snapshots:   map[string]snapshot{},
		failVolumes: map[string]string{},
	}
}

// SetNode adds or replaces a storage node.
func (d *Driver) SetNode(n drivers.StorageNode) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nodes[n.Node] = n
}

// SetReplicas says which nodes hold the PersistentVolume's data.
func (d *Driver) SetReplicas(pv string, nodes ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.replicas[pv] = slices.Clone(nodes)
}

// FailVolume makes work on the PersistentVolume fail with the message.
func (d *Driver) FailVolume(pv, message string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failVolumes[pv] = message
}

// Snapshots returns the IDs of the snapshots the driver holds.
func (d *Driver) Snapshots() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.snapshots))
}

// Name implements drivers.Driver.
func (d *Driver) Name() string { return Name }

// Owns implements drivers.Driver: CSI volumes of driver fake.stork.dev, or claims of a
// StorageClass with that provisioner.
func (d *Driver) Owns(v drivers.Volume) bool {
	if v.PV != nil {
		return v.PV.Spec.CSI != nil && v.PV.Spec.CSI.Driver == Name
	}
	return v.StorageClass != nil && v.StorageClass.Provisioner == Name
}

// StorageNodes implements drivers.Driver.
func (d *Driver) StorageNodes(context.Context) ([]drivers.StorageNode, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]drivers.StorageNode, 0, len(d.nodes))
	for _, name := range slices.Sorted(maps.Keys(d.nodes)) {
		out = append(out, d.nodes[name])
	}
	return out, nil
}

// Locate implements drivers.Driver.
func (d *Driver) Locate(_ context.Context, v drivers.Volume) (drivers.Location, error) {
	if v.PV == nil {
		return drivers.Location{}, fmt.Errorf("locating volume: claim is not bound yet")
	}
	if !d.Owns(v) {
		return drivers.Location{}, fmt.Errorf("locating PersistentVolume %s: %w", v.PV.Name, drivers.ErrNotOwned)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var loc drivers.Location
	for _, node := range d.replicas[v.PV.Name] {
		n, ok := d.nodes[node]
		loc.Replicas = append(loc.Replicas, drivers.Replica{
			Node:     node,
			Topology: n.Topology,
			Healthy:  ok && (n.Health == storkv1.StorageHealthy || n.Health == storkv1.StorageDegraded),
		})
	}
	return loc, nil
}

// step counts a call for the key and reports whether the work is now done.
func (d *Driver) step(key string) bool {
	d.calls[key]++
	return d.calls[key] >= d.steps
}

// Snapshot implements drivers.Snapshotter.
func (d *Driver) Snapshot(_ context.Context, req drivers.SnapshotRequest) ([]drivers.VolumeStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]drivers.VolumeStatus, len(req.Volumes))
	for i, v := range req.Volumes {
		if v.PV == nil || !d.Owns(v) {
			return nil, fmt.Errorf("snapshot %s: volume %d: %w", req.ID, i, drivers.ErrNotOwned)
		}
		pv := v.PV.Name
		st := drivers.VolumeStatus{VolumeName: pv, Phase: storkv1.VolumeInProgress}
		if msg, bad := d.failVolumes[pv]; bad {
			st.Phase, st.Reason, st.Message = storkv1.VolumeFailed, "SnapshotFailed", msg
			out[i] = st
			continue
		}
		id := req.ID + "/" + pv
		size := v.PV.Spec.Capacity.Storage().Value()
		if d.step(id) {
			node := ""
			if r := d.replicas[pv]; len(r) > 0 {
				node = r[0]
			}
			d.snapshots[id] = snapshot{volume: pv, node: node, size: size}
			st.Phase, st.SnapshotID, st.Node, st.SizeBytes = storkv1.VolumeSucceeded, id, node, size
			st.Progress = storkv1.Progress{BytesDone: size, BytesTotal: size}
		} else {
			st.Progress = storkv1.Progress{BytesTotal: size}
		}
		out[i] = st
	}
	return out, nil
}

// DeleteSnapshot implements drivers.Snapshotter.
func (d *Driver) DeleteSnapshot(_ context.Context, ref drivers.SnapshotRef) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.snapshots, ref.SnapshotID)
	return true, nil
}

// Restore implements drivers.Restorer. The result lives on the snapshot's node.
func (d *Driver) Restore(_ context.Context, req drivers.RestoreRequest) (drivers.VolumeStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	snap, ok := d.snapshots[req.Source.SnapshotID]
	if !ok {
		return snapshotNotFound(req.Source.SnapshotID), nil
	}
	pv := "pv-" + req.ID
	st := drivers.VolumeStatus{VolumeName: pv, Phase: storkv1.VolumeInProgress, Progress: storkv1.Progress{BytesTotal: snap.size}}
	if d.step(req.ID) {
		d.replicas[pv] = []string{snap.node}
		st.Phase, st.Node, st.SizeBytes = storkv1.VolumeSucceeded, snap.node, snap.size
		st.Progress.BytesDone = snap.size
	}
	return st, nil
}

func snapshotNotFound(id string) drivers.VolumeStatus {
	return drivers.VolumeStatus{Phase: storkv1.VolumeFailed, Reason: "SnapshotNotFound",
		Message: fmt.Sprintf("snapshot %q does not exist", id)}
}

// Export implements drivers.Exporter.
func (d *Driver) Export(_ context.Context, req drivers.ExportRequest) (drivers.VolumeStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	snap, ok := d.snapshots[req.Source.SnapshotID]
	if !ok {
		return snapshotNotFound(req.Source.SnapshotID), nil
	}
	st := drivers.VolumeStatus{VolumeName: snap.volume, Phase: storkv1.VolumeInProgress, Progress: storkv1.Progress{BytesTotal: snap.size}}
	if d.step(req.ID) {
		st.Phase, st.RepositorySnapshotID, st.SizeBytes = storkv1.VolumeSucceeded, "repo-"+req.ID, snap.size
		st.Progress.BytesDone = snap.size
	}
	return st, nil
}

// Import implements drivers.Importer: the new volume lands on the first healthy node of the
// requested zone; it waits while the zone's nodes are all unhealthy.
func (d *Driver) Import(_ context.Context, req drivers.ImportRequest) (drivers.VolumeStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.imports = append(d.imports, req)
	var node string
	unhealthy := false
	for _, name := range slices.Sorted(maps.Keys(d.nodes)) {
		n := d.nodes[name]
		if req.Topology.Zone != "" && n.Topology.Zone != req.Topology.Zone {
			continue
		}
		if n.Health == storkv1.StorageHealthy {
			node = name
			break
		}
		unhealthy = true
	}
	if node == "" && unhealthy {
		return drivers.VolumeStatus{Phase: storkv1.VolumePending, Reason: drivers.ReasonNoHealthyStorage,
			Message: fmt.Sprintf("no healthy storage node in zone %q", req.Topology.Zone)}, nil
	}
	if node == "" {
		return drivers.VolumeStatus{Phase: storkv1.VolumeFailed, Reason: "NoStorageNode",
			Message: fmt.Sprintf("no healthy storage node in zone %q", req.Topology.Zone)}, nil
	}
	pv := "pv-" + req.ID
	st := drivers.VolumeStatus{VolumeName: pv, Phase: storkv1.VolumeInProgress, Progress: storkv1.Progress{BytesTotal: req.SizeBytes}}
	if d.step(req.ID) {
		d.replicas[pv] = []string{node}
		st.Phase, st.Node, st.SizeBytes = storkv1.VolumeSucceeded, node, req.SizeBytes
		st.Progress.BytesDone = req.SizeBytes
	}
	return st, nil
}

// PV returns a PersistentVolume of the fake driver, for tests.
func PV(name string, sizeBytes int64) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{}
	pv.Name = name
	pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: Name, VolumeHandle: name}
	pv.Spec.Capacity = corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(sizeBytes, resource.BinarySI)}
	return pv
}
