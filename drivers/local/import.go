package local

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/names"
	"stork.dev/stork/internal/units"
)

// Import implements drivers.Importer: a Download task on a storage node in req.Topology restores
// the backup into a new volume directory on that node, then a PersistentVolume for it is made,
// pre-bound to the target claim, as Restore does.
//
// The node is chosen once, when the task is created: the task's name derives from req.ID, so
// every later call (a retry, a restarted controller) finds the task and with it the node,
// whatever the nodes' capacity or health is by then. Choosing again could put half a restore on
// one node and its volume on another.
func (d *Driver) Import(ctx context.Context, req drivers.ImportRequest) (drivers.VolumeStatus, error) {
	pvName := taskName("stork-restore", req.ID)
	t := &storkv1.VolumeTask{}
	key := client.ObjectKey{Namespace: req.Namespace, Name: taskName("download", req.ID)}
	switch err := d.c.Get(ctx, key, t); {
	case apierrors.IsNotFound(err):
		if st, ok := checkImport(req, pvName); !ok {
			return st, nil
		}
		nodes, err := d.StorageNodes(ctx)
		if err != nil {
			return drivers.VolumeStatus{}, fmt.Errorf("choosing a node for the import of backup %s: %w", req.RepositorySnapshotID, err)
		}
		node, why, wait, full := chooseNode(nodes, req.Topology, req.DataBytes)
		switch {
		case node == "" && full:
			return drivers.VolumeStatus{VolumeName: pvName, Phase: storkv1.VolumeFailed, Reason: "InsufficientCapacity", Message: why}, nil
		case node == "" && wait:
			// The zone has storage, none of it healthy now: an agent may be back soon.
			return drivers.VolumeStatus{VolumeName: pvName, Phase: storkv1.VolumePending, Reason: drivers.ReasonNoHealthyStorage, Message: why}, nil
		case node == "":
			return drivers.VolumeStatus{VolumeName: pvName, Phase: storkv1.VolumeFailed, Reason: "NoStorageNode", Message: why}, nil
		}
		t, err = d.ensureTask(ctx, &storkv1.VolumeTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskDownload, NodeName: node, VolumeName: pvName,
				BackupLocation: req.Location, AccessSecretName: req.AccessSecret, RepositorySnapshotID: req.RepositorySnapshotID, Verify: req.Verify, Paths: req.Paths},
		}, req.Owner)
		if err != nil {
			return drivers.VolumeStatus{}, err
		}
		if t.ResourceVersion == "" {
			// Another reconcile created the task, perhaps on another node, and it cannot be
			// read yet: its node is not known until it can.
			return drivers.VolumeStatus{VolumeName: pvName, Phase: storkv1.VolumePending, Reason: "WaitingForAgent",
				Message: "the download task " + key.Name + " was created by an earlier attempt and is not visible yet"}, nil
		}
	case err != nil:
		return drivers.VolumeStatus{}, fmt.Errorf("reading VolumeTask %s: %w", key, err)
	}
	st := statusOf(t, pvName)
	if st.Phase != storkv1.VolumeSucceeded {
		return st, nil
	}
	return d.createVolume(ctx, t, st, newVolume{
		labels:          map[string]string{LabelRestoredFromBackup: names.LabelValue(t.Spec.RepositorySnapshotID)},
		targetNamespace: req.TargetNamespace, targetClaim: req.TargetClaim,
		sizeBytes: req.SizeBytes, storageClassName: req.StorageClassName, accessModes: req.AccessModes,
	})
}

// checkImport fails an import whose request lacks what the Download task needs, rather than
// leaving it to the API server to refuse the task on every retry.
func checkImport(req drivers.ImportRequest, pvName string) (drivers.VolumeStatus, bool) {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"location", req.Location}, {"access Secret", req.AccessSecret}, {"repository snapshot ID", req.RepositorySnapshotID},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) == 0 {
		return drivers.VolumeStatus{}, true
	}
	return drivers.VolumeStatus{VolumeName: pvName, Phase: storkv1.VolumeFailed, Reason: "InvalidRequest",
		Message: "the import request names no " + strings.Join(missing, ", no ")}, false
}

// chooseNode picks the node for a new volume of need bytes in topo: a Healthy storage node in
// topo's zone and region (those that are set) with room for need (a node that reports no
// capacity is taken at its word) and the most free bytes, ties broken by name so that equal
// nodes give the same answer every time. When none fits it returns "" and why, naming what was
// asked for and what there is; wait when topo has storage nodes, none of them healthy now; full
// when healthy ones are there but none has room.
func chooseNode(nodes []drivers.StorageNode, topo storkv1.Topology, need int64) (node, why string, wait, full bool) {
	var there []drivers.StorageNode
	for _, n := range nodes {
		if (topo.Zone == "" || n.Topology.Zone == topo.Zone) && (topo.Region == "" || n.Topology.Region == topo.Region) {
			there = append(there, n)
		}
	}
	var best *drivers.StorageNode
	var tooSmall []string
	for i := range there {
		n := &there[i]
		if n.Health != storkv1.StorageHealthy {
			continue
		}
		if c := n.Capacity; (c.FreeBytes > 0 || c.TotalBytes > 0) && c.FreeBytes < need {
			tooSmall = append(tooSmall, fmt.Sprintf("%s has %s free", n.Node, units.Bytes(c.FreeBytes)))
			continue
		}
		if best == nil || n.Capacity.FreeBytes > best.Capacity.FreeBytes ||
			(n.Capacity.FreeBytes == best.Capacity.FreeBytes && n.Node < best.Node) {
			best = n
		}
	}
	switch {
	case best != nil:
		return best.Node, "", false, false
	case len(tooSmall) > 0:
		slices.Sort(tooSmall)
		return "", fmt.Sprintf("no healthy local storage node%s has room for the backup's %s: %s", where(topo), units.Bytes(need), strings.Join(tooSmall, ", ")), false, true
	}
	return "", noNodeMessage(nodes, there, topo), len(there) > 0, false
}

// place names topo's zone and region for messages: "zone b of region r1", "zone b", "region
// r1", or "" when neither is set.
func place(topo storkv1.Topology) string {
	switch {
	case topo.Zone != "" && topo.Region != "":
		return "zone " + topo.Zone + " of region " + topo.Region
	case topo.Zone != "":
		return "zone " + topo.Zone
	case topo.Region != "":
		return "region " + topo.Region
	}
	return ""
}

// where is place as " in …", or "".
func where(topo storkv1.Topology) string {
	if p := place(topo); p != "" {
		return " in " + p
	}
	return ""
}

// noNodeMessage says why no node fits topo: no storage at all, none there (and where there is
// some), or none healthy there (and what is wrong with each).
func noNodeMessage(all, there []drivers.StorageNode, topo storkv1.Topology) string {
	want, in, domain := place(topo), where(topo), "nodes"
	switch {
	case topo.Zone != "":
		domain = "nodes in that zone"
	case topo.Region != "":
		domain = "nodes in that region"
	}
	if len(all) == 0 {
		return "no local storage node" + in + ": no stork-agent has reported a StorageNode of driver " + Name
	}
	if len(there) == 0 {
		return "no storage node has " + want + "; " + domains(all, topo)
	}
	slices.SortFunc(there, func(a, b drivers.StorageNode) int { return strings.Compare(a.Node, b.Node) })
	var bad []string
	for _, n := range there {
		s := n.Node + " (" + string(n.Health)
		if n.Reason != "" {
			s += ": " + n.Reason
		}
		bad = append(bad, s+")")
	}
	return "no healthy local storage node" + in + ": " + domain + ": " + strings.Join(bad, ", ")
}

// domains lists the zones (or, when only a region was asked for, the regions) that have local
// storage, for a message.
func domains(nodes []drivers.StorageNode, topo storkv1.Topology) string {
	what := "zones"
	if topo.Zone == "" {
		what = "regions"
	}
	var names []string
	for _, n := range nodes {
		name := n.Topology.Zone
		switch {
		case topo.Zone == "":
			name = n.Topology.Region
		case topo.Region != "" && name != "" && n.Topology.Region != "":
			name += " (region " + n.Topology.Region + ")"
		}
		if name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return "no local storage node has " + what + " labels"
	}
	return what + " with local storage: " + strings.Join(names, ", ")
}
