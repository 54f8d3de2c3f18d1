package local

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/drivers/local/agent"
	"stork.dev/stork/drivers/taskstatus"
	"stork.dev/stork/internal/names"
)

// Name is the driver's name.
const Name = agent.DriverName

// Config keys (stork --driver-config local.roots=/a,/b).
const (
	// ConfigRoots lists the directories under which PersistentVolume paths belong to this
	// driver, comma-separated. Default: /var/lib/stork/local and local-path-provisioner's
	// /opt/local-path-provisioner.
	ConfigRoots = "local.roots"
)

// DefaultRoots are the roots owned when none are configured.
var DefaultRoots = []string{"/var/lib/stork/local", "/opt/local-path-provisioner"}

func init() {
	// Before the catch-all drivers (csi): a local PV is this driver's whatever made it.
	drivers.Register(Name, 10, func(o drivers.Options) (drivers.Driver, error) { return New(o) })
}

// Driver is the local driver's controller side.
type Driver struct {
	c              client.Client
	log            logr.Logger
	roots          []string
	agentNamespace string
}

var (
	_ drivers.Snapshotter     = (*Driver)(nil)
	_ drivers.Restorer        = (*Driver)(nil)
	_ drivers.Exporter        = (*Driver)(nil)
	_ drivers.Importer        = (*Driver)(nil)
	_ drivers.ControllerOwner = (*Driver)(nil)
)

// New makes the driver from its options.
func New(o drivers.Options) (*Driver, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("the local driver needs a Kubernetes client")
	}
	roots := DefaultRoots
	if v := strings.TrimSpace(o.Config[ConfigRoots]); v != "" {
		roots = nil
		for _, r := range strings.Split(v, ",") {
			r = filepath.Clean(strings.TrimSpace(r))
			if !filepath.IsAbs(r) {
				return nil, fmt.Errorf("%s: root %q is not an absolute path", ConfigRoots, r)
			}
			roots = append(roots, r)
		}
	}
	ns := o.Config[ConfigAgentNamespace]
	if ns == "" {
		ns = "stork-system"
	}
	return &Driver{c: o.Client, log: o.Log, roots: roots, agentNamespace: ns}, nil
}

// Name implements drivers.Driver.
func (d *Driver) Name() string { return Name }

// VolumePath returns the directory of a local or hostPath PersistentVolume.
func VolumePath(pv *corev1.PersistentVolume) string {
	switch {
	case pv == nil:
		return ""
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path
	}
	return ""
}

// VolumeNode returns the one node a PersistentVolume's required node affinity names by
// hostname, as local-path-provisioner and local PVs do.
func VolumeNode(pv *corev1.PersistentVolume) string {
	if pv == nil || pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == corev1.LabelHostname && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				return e.Values[0]
			}
		}
	}
	return ""
}

// Owns implements drivers.Driver: a bound local or hostPath volume under one of the roots,
// with a node affinity naming its node.
func (d *Driver) Owns(v drivers.Volume) bool {
	p := VolumePath(v.PV)
	if p == "" || VolumeNode(v.PV) == "" {
		return false
	}
	return d.underRoot(p)
}

// underRoot reports whether path is strictly inside one of the roots.
func (d *Driver) underRoot(path string) bool {
	path = filepath.Clean(path)
	for _, r := range d.roots {
		if rel, err := filepath.Rel(r, path); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}

// StorageNodes implements drivers.Driver from the agents' StorageNode objects.
func (d *Driver) StorageNodes(ctx context.Context) ([]drivers.StorageNode, error) {
	var list storkv1.StorageNodeList
	if err := d.c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing StorageNodes: %w", err)
	}
	var out []drivers.StorageNode
	for _, sn := range list.Items {
		if sn.Spec.Driver == Name {
			out = append(out, toStorageNode(&sn))
		}
	}
	return out, nil
}

func toStorageNode(sn *storkv1.StorageNode) drivers.StorageNode {
	n := drivers.StorageNode{Node: sn.Spec.NodeName, Topology: sn.Status.Topology, Health: sn.Status.Health, Capacity: sn.Status.Capacity}
	if sn.Status.LastHeartbeatTime != nil {
		n.LastSeen = sn.Status.LastHeartbeatTime.Time
	}
	if n.Health == "" {
		n.Health = storkv1.StorageUnknown
	}
	if n.Health != storkv1.StorageHealthy {
		var why []string
		for _, c := range sn.Status.Conditions {
			bad := c.Status == metav1.ConditionTrue
			if c.Type == storkv1.StorageConditionAgentAlive || c.Type == storkv1.StorageConditionWritable {
				bad = !bad
			}
			if bad {
				why = append(why, c.Type+": "+c.Message)
			}
		}
		n.Reason = strings.Join(why, "; ")
	}
	return n
}

// Locate implements drivers.Driver: the data is on the node of the volume's affinity.
func (d *Driver) Locate(ctx context.Context, v drivers.Volume) (drivers.Location, error) {
	if !d.Owns(v) {
		return drivers.Location{}, fmt.Errorf("locating %s: %w", volumeName(v), drivers.ErrNotOwned)
	}
	node := VolumeNode(v.PV)
	r := drivers.Replica{Node: node}
	sn := &storkv1.StorageNode{}
	err := d.c.Get(ctx, client.ObjectKey{Name: agent.StorageNodeName(Name, node)}, sn)
	switch {
	case err == nil:
		r.Topology = sn.Status.Topology
		r.Healthy = sn.Status.Health == storkv1.StorageHealthy || sn.Status.Health == storkv1.StorageDegraded
	case apierrors.IsNotFound(err):
		// No agent has reported from the node (yet): nothing says the copy cannot serve, and
		// placement treats storage it has no report of as usable, not as down.
		r.Healthy = true
	default:
		return drivers.Location{}, fmt.Errorf("reading the StorageNode of %s: %w", node, err)
	}
	return drivers.Location{Replicas: []drivers.Replica{r}, Topology: r.Topology}, nil
}

func volumeName(v drivers.Volume) string {
	if v.PV != nil {
		return "PersistentVolume " + v.PV.Name
	}
	if v.Claim != nil {
		return "PersistentVolumeClaim " + v.Claim.Namespace + "/" + v.Claim.Name
	}
	return "volume"
}

// taskName makes a VolumeTask name from its kind and identifying parts.
func taskName(kind string, parts ...string) string { return names.Hashed(kind, parts...) }

// ensureTask creates the task unless it exists, and returns it as stored.
func (d *Driver) ensureTask(ctx context.Context, t *storkv1.VolumeTask, owner *metav1.OwnerReference) (*storkv1.VolumeTask, error) {
	got := &storkv1.VolumeTask{}
	err := d.c.Get(ctx, client.ObjectKeyFromObject(t), got)
	if err == nil {
		return got, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading VolumeTask %s/%s: %w", t.Namespace, t.Name, err)
	}
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[storkv1.LabelTaskNode] = t.Spec.NodeName
	t.Labels[storkv1.LabelTaskDriver] = Name
	t.Spec.Driver = Name
	if owner != nil {
		t.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if err := d.c.Create(ctx, t); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Made by a previous reconcile whose result the cache had not shown yet: the stored
			// task if it shows now, else the one asked for (with no status, and no
			// resourceVersion: it was not read).
			if d.c.Get(ctx, client.ObjectKeyFromObject(t), got) == nil {
				return got, nil
			}
			return t, nil
		}
		return nil, fmt.Errorf("creating VolumeTask %s/%s: %w", t.Namespace, t.Name, err)
	}
	return t, nil
}

// statusOf turns a task's status into a volume status.
func statusOf(t *storkv1.VolumeTask, volume string) drivers.VolumeStatus {
	s := drivers.VolumeStatus{VolumeName: volume, Node: t.Spec.NodeName, Progress: t.Status.Progress,
		SnapshotID: t.Status.SnapshotID, SizeBytes: t.Status.SizeBytes, Verification: t.Status.Verification, Reason: t.Status.Reason, Message: t.Status.Message}
	s.Phase = taskstatus.VolumePhase(t.Status.Phase)
	if s.Phase == storkv1.VolumePending {
		s.Reason, s.Message = "WaitingForAgent", "waiting for the stork-agent of node "+t.Spec.NodeName+" to take the task "+t.Name
	}
	return s
}

// Snapshot implements drivers.Snapshotter: one Snapshot task per volume, all created before
// any status is returned, so that the agents of all nodes start together.
func (d *Driver) Snapshot(ctx context.Context, req drivers.SnapshotRequest) ([]drivers.VolumeStatus, error) {
	tasks := make([]*storkv1.VolumeTask, len(req.Volumes))
	for i, v := range req.Volumes {
		if !d.Owns(v) {
			return nil, fmt.Errorf("snapshot of %s: %w", volumeName(v), drivers.ErrNotOwned)
		}
		t, err := d.ensureTask(ctx, &storkv1.VolumeTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: taskName("snapshot", req.ID, v.PV.Name)},
			Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskSnapshot, NodeName: VolumeNode(v.PV), VolumeName: v.PV.Name,
				SourcePath: VolumePath(v.PV)},
		}, req.Owner)
		if err != nil {
			return nil, err
		}
		tasks[i] = t
	}
	out := make([]drivers.VolumeStatus, len(tasks))
	for i, t := range tasks {
		out[i] = statusOf(t, req.Volumes[i].PV.Name)
	}
	return out, nil
}

// DeleteSnapshot implements drivers.Snapshotter with a DeleteSnapshot task on the snapshot's
// node. A snapshot whose node is gone is gone with it.
func (d *Driver) DeleteSnapshot(ctx context.Context, ref drivers.SnapshotRef) (bool, error) {
	if ref.SnapshotID == "" || ref.Node == "" {
		return true, nil // nothing was captured
	}
	if err := d.c.Get(ctx, client.ObjectKey{Name: ref.Node}, &corev1.Node{}); apierrors.IsNotFound(err) {
		d.log.Info("the node of a snapshot is gone, and its data with it", "node", ref.Node, "snapshot", ref.SnapshotID)
		return true, nil
	}
	t, err := d.ensureTask(ctx, &storkv1.VolumeTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: taskName("delete", ref.Node, ref.SnapshotID)},
		Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskDeleteSnapshot, NodeName: ref.Node, VolumeName: ref.VolumeName,
			SnapshotID: ref.SnapshotID},
	}, nil)
	if err != nil {
		return false, err
	}
	switch t.Status.Phase {
	case storkv1.TaskSucceeded:
		// The task has done its job; it goes too.
		if err := d.c.Delete(ctx, t); err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		return true, nil
	case storkv1.TaskFailed:
		// Removed, so that the next call tries again with a new task.
		if err := d.c.Delete(ctx, t); err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		return false, fmt.Errorf("deleting snapshot %s on node %s failed (VolumeTask %s/%s): %s; retrying", ref.SnapshotID, ref.Node, t.Namespace, t.Name, t.Status.Message)
	}
	return false, nil
}

// Export implements drivers.Exporter with an Upload task on the snapshot's node: the agent
// backs the snapshot up with the backup engine, reaching the location through the access
// Secret the request names.
func (d *Driver) Export(ctx context.Context, req drivers.ExportRequest) (drivers.VolumeStatus, error) {
	t, err := d.ensureTask(ctx, &storkv1.VolumeTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Source.Namespace, Name: taskName("upload", req.ID)},
		Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskUpload, NodeName: req.Source.Node, VolumeName: req.Source.VolumeName,
			SnapshotID: req.Source.SnapshotID, BackupLocation: req.Location, AccessSecretName: req.AccessSecret, Tags: req.Tags,
			StrictChangeDetection: req.StrictChangeDetection},
	}, req.Owner)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	st := statusOf(t, req.Source.VolumeName)
	st.RepositorySnapshotID = t.Status.RepositorySnapshotID
	return st, nil
}

// Restore implements drivers.Restorer: a Restore task copies the snapshot into a new volume
// directory on the snapshot's node, then a PersistentVolume for it is made, pre-bound to the
// target claim.
func (d *Driver) Restore(ctx context.Context, req drivers.RestoreRequest) (drivers.VolumeStatus, error) {
	pvName := taskName("stork-restore", req.ID)
	t, err := d.ensureTask(ctx, &storkv1.VolumeTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: taskName("restore", req.ID)},
		Spec: storkv1.VolumeTaskSpec{Type: storkv1.TaskRestore, NodeName: req.Source.Node, VolumeName: pvName,
			SnapshotID: req.Source.SnapshotID},
	}, req.Owner)
	if err != nil {
		return drivers.VolumeStatus{}, err
	}
	st := statusOf(t, pvName)
	if st.Phase != storkv1.VolumeSucceeded {
		return st, nil
	}
	return d.createVolume(ctx, t, st, newVolume{
		labels:          map[string]string{LabelRestoredFrom: names.LabelValue(req.Source.SnapshotID)},
		targetNamespace: req.TargetNamespace, targetClaim: req.TargetClaim,
		sizeBytes: req.SizeBytes, storageClassName: req.StorageClassName, accessModes: req.AccessModes,
	})
}

// Labels on the PersistentVolumes of restored volumes, naming where their data came from.
const (
	// LabelRestoredFrom is the local snapshot a Restore copied (see SnapshotID in the agent).
	LabelRestoredFrom = "stork.dev/restored-from"
	// LabelRestoredFromBackup is the repository snapshot an Import downloaded.
	LabelRestoredFromBackup = "stork.dev/restored-from-backup"
)

// newVolume is what the PersistentVolume of a restored or imported volume takes from the request.
type newVolume struct {
	labels                       map[string]string
	targetNamespace, targetClaim string
	sizeBytes                    int64
	storageClassName             string
	// accessModes default to ReadWriteOnce.
	accessModes []corev1.PersistentVolumeAccessMode
}

// createVolume makes the PersistentVolume of the volume directory that a succeeded Restore or
// Download task t made, on t's node, pre-bound to the target claim, and returns st (the task's
// status) as the volume's. The path comes from the agent's report and is not trusted: only a
// volume directory of the driver's own layout, named after this volume, under a root the driver
// owns, becomes a volume; another path fails the volume with InvalidVolumePath.
func (d *Driver) createVolume(ctx context.Context, t *storkv1.VolumeTask, st drivers.VolumeStatus, v newVolume) (drivers.VolumeStatus, error) {
	pvName, node := t.Spec.VolumeName, t.Spec.NodeName
	path := filepath.Clean(t.Status.Path)
	if filepath.Base(path) != pvName || filepath.Base(filepath.Dir(path)) != "volumes" || !d.underRoot(path) {
		st.Phase, st.Reason = storkv1.VolumeFailed, "InvalidVolumePath"
		st.Message = fmt.Sprintf("the agent of node %s reported volume path %q, which is not <root>/volumes/%s under the driver's roots %v", node, t.Status.Path, pvName, d.roots)
		return st, nil
	}
	modes := v.accessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName, Labels: v.labels},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(v.sizeBytes, resource.BinarySI)},
			AccessModes:                   modes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              v.storageClassName,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: v.targetNamespace, Name: v.targetClaim},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	if err := d.c.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		return drivers.VolumeStatus{}, fmt.Errorf("creating PersistentVolume %s for the restored data: %w", pvName, err)
	}
	return st, nil
}
