package csi

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
	"stork.dev/stork/internal/version"
)

// Name is the driver's name.
const Name = "csi"

// Config keys (stork --driver-config csi.exclude=driver.longhorn.io).
const (
	// ConfigDrivers lists the CSI drivers to handle, comma-separated; empty handles every CSI
	// driver that no more specific Stork driver owns.
	ConfigDrivers = "csi.drivers"
	// ConfigExclude lists CSI drivers never handled.
	ConfigExclude = "csi.exclude"
	// ConfigSnapshotClasses maps CSI drivers to VolumeSnapshotClasses (driver=class,…);
	// unmapped drivers use their default class.
	ConfigSnapshotClasses = "csi.snapshotClasses"
	// ConfigGroupSnapshotClasses maps CSI drivers to VolumeGroupSnapshotClasses.
	ConfigGroupSnapshotClasses = "csi.groupSnapshotClasses"
	// ConfigGroupSnapshots is "auto" (default: a VolumeGroupSnapshot where the CSI driver has a
	// class for it) or "off".
	ConfigGroupSnapshots = "csi.groupSnapshots"
	// ConfigMoverImage is the image of data mover pods (default stork:<version>).
	ConfigMoverImage = "csi.moverImage"
	// ConfigMoverServiceAccount runs mover pods (default stork-mover).
	ConfigMoverServiceAccount = "csi.moverServiceAccount"
	// ConfigMoverMaxPerNode and ConfigMoverMax bound the mover pods running at once on one
	// node (default 1) and in the cluster (default 8).
	ConfigMoverMaxPerNode = "csi.moverMaxPerNode"
	ConfigMoverMax        = "csi.moverMax"
	// ConfigMoverRequests and ConfigMoverLimits are the mover container's resources
	// (cpu=…,memory=…).
	ConfigMoverRequests = "csi.moverRequests"
	ConfigMoverLimits   = "csi.moverLimits"
	// ConfigMoverAttempts bounds how often a mover pod is started for one piece of work
	// (default 3).
	ConfigMoverAttempts = "csi.moverAttempts"
	// ConfigMoverStartTimeout fails work whose mover pod could not start (unschedulable, no
	// image) for this long (default 10m).
	ConfigMoverStartTimeout = "csi.moverStartTimeout"
	// ConfigMoverTmpSize bounds the mover's scratch space (/tmp, where the engine stages the
	// packs it uploads to cloud stores; default 1Gi).
	ConfigMoverTmpSize = "csi.moverTmpSize"
	// ConfigMoverFileAccess is "restricted" (default: the restricted Pod Security Standard,
	// non-root, no capabilities) or "all-files": root with only the capabilities that read
	// every file (backups) or keep every owner and mode (restores), still without privilege
	// escalation. The namespace must admit the baseline Pod Security Standard for it.
	ConfigMoverFileAccess = "csi.moverFileAccess"
	// ConfigSweepInterval is how often temporaries whose work is over are looked for
	// (default 1m).
	ConfigSweepInterval = "csi.sweepInterval"
)

func init() {
	// After the specific drivers (local 10, longhorn 20): this one takes what they leave.
	drivers.Register(Name, 100, func(o drivers.Options) (drivers.Driver, error) { return New(o) })
}

// Driver is the generic CSI driver.
type Driver struct {
	c   client.Client
	api client.Reader
	log logr.Logger
	cfg config
	// slots serialises choosing a mover pod's node and creating the pod (see runMover).
	slots sync.Mutex
}

// config is the driver's settings, parsed once.
type config struct {
	include, exclude     []string
	snapshotClasses      map[string]string
	groupClasses         map[string]string
	groupSnapshots       bool
	namespace            string
	image                string
	serviceAccount       string
	maxPerNode, maxTotal int
	attempts             int32
	startTimeout         time.Duration
	sweepInterval        time.Duration
	requests, limits     corev1.ResourceList
	tmpSize              resource.Quantity
	allFiles             bool
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
		return nil, fmt.Errorf("the csi driver needs a Kubernetes client")
	}
	cfg, err := parseConfig(o.Config, o.Namespace)
	if err != nil {
		return nil, err
	}
	api := o.APIReader
	if api == nil {
		api = o.Client
	}
	return &Driver{c: o.Client, api: api, log: o.Log, cfg: cfg}, nil
}

func parseConfig(m map[string]string, namespace string) (config, error) {
	cfg := config{
		include: list(m[ConfigDrivers]), exclude: list(m[ConfigExclude]),
		groupSnapshots: true, namespace: namespace, image: "stork:" + version.Version, serviceAccount: "stork-mover",
		maxPerNode: 1, maxTotal: 8, attempts: 3, startTimeout: 10 * time.Minute, sweepInterval: time.Minute,
		requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		tmpSize:  resource.MustParse("1Gi"),
	}
	if cfg.namespace == "" {
		cfg.namespace = "stork-system"
	}
	var err error
	if cfg.snapshotClasses, err = pairs(ConfigSnapshotClasses, m[ConfigSnapshotClasses]); err != nil {
		return cfg, err
	}
	if cfg.groupClasses, err = pairs(ConfigGroupSnapshotClasses, m[ConfigGroupSnapshotClasses]); err != nil {
		return cfg, err
	}
	switch v := m[ConfigGroupSnapshots]; v {
	case "", "auto":
	case "off":
		cfg.groupSnapshots = false
	default:
		return cfg, fmt.Errorf("%s: %q is neither auto nor off", ConfigGroupSnapshots, v)
	}
	switch v := m[ConfigMoverFileAccess]; v {
	case "", "restricted":
	case "all-files":
		cfg.allFiles = true
	default:
		return cfg, fmt.Errorf("%s: %q is neither restricted nor all-files", ConfigMoverFileAccess, v)
	}
	if v := m[ConfigMoverTmpSize]; v != "" {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return cfg, fmt.Errorf("%s: %q is not a positive size such as 1Gi", ConfigMoverTmpSize, v)
		}
		cfg.tmpSize = q
	}
	if v := m[ConfigMoverImage]; v != "" {
		cfg.image = v
	}
	if v := m[ConfigMoverServiceAccount]; v != "" {
		cfg.serviceAccount = v
	}
	for _, n := range []struct {
		key string
		to  *int
	}{{ConfigMoverMaxPerNode, &cfg.maxPerNode}, {ConfigMoverMax, &cfg.maxTotal}} {
		if v := m[n.key]; v != "" {
			i, err := strconv.Atoi(v)
			if err != nil || i < 1 {
				return cfg, fmt.Errorf("%s: %q is not a positive number", n.key, v)
			}
			*n.to = i
		}
	}
	if v := m[ConfigMoverAttempts]; v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 1 || i > 100 {
			return cfg, fmt.Errorf("%s: %q is not a number from 1 to 100", ConfigMoverAttempts, v)
		}
		cfg.attempts = int32(i)
	}
	for _, dur := range []struct {
		key string
		to  *time.Duration
	}{{ConfigMoverStartTimeout, &cfg.startTimeout}, {ConfigSweepInterval, &cfg.sweepInterval}} {
		if v := m[dur.key]; v != "" {
			if *dur.to, err = time.ParseDuration(v); err != nil || *dur.to <= 0 {
				return cfg, fmt.Errorf("%s: %q is not a positive duration such as 10m", dur.key, v)
			}
		}
	}
	for _, r := range []struct {
		key string
		to  corev1.ResourceList
	}{{ConfigMoverRequests, cfg.requests}, {ConfigMoverLimits, cfg.limits}} {
		kv, err := pairs(r.key, m[r.key])
		if err != nil {
			return cfg, err
		}
		for k, v := range kv {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return cfg, fmt.Errorf("%s: %s=%q: %w", r.key, k, v, err)
			}
			r.to[corev1.ResourceName(k)] = q
		}
	}
	return cfg, nil
}

// list splits a comma-separated setting.
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// pairs parses "a=b,c=d".
func pairs(key, v string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range list(v) {
		k, val, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(val) == "" {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", key, p)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return out, nil
}

// Name implements drivers.Driver.
func (d *Driver) Name() string { return Name }

// handles reports whether the CSI driver named is one this driver works with.
func (d *Driver) handles(csiDriver string) bool {
	if csiDriver == "" || slices.Contains(d.cfg.exclude, csiDriver) {
		return false
	}
	return len(d.cfg.include) == 0 || slices.Contains(d.cfg.include, csiDriver)
}

// Owns implements drivers.Driver: a bound volume of a handled CSI driver. An unbound claim is
// owned only when its class's provisioner is named in csi.drivers: provisioner names alone do
// not tell CSI drivers from other provisioners.
func (d *Driver) Owns(v drivers.Volume) bool {
	if v.PV != nil {
		return v.PV.Spec.CSI != nil && d.handles(v.PV.Spec.CSI.Driver)
	}
	return v.StorageClass != nil && slices.Contains(d.cfg.include, v.StorageClass.Provisioner) && d.handles(v.StorageClass.Provisioner)
}

// csiDriver is the CSI driver of an owned volume.
func csiDriver(pv *corev1.PersistentVolume) string {
	if pv == nil || pv.Spec.CSI == nil {
		return ""
	}
	return pv.Spec.CSI.Driver
}

// StorageNodes implements drivers.Driver: every node with a CSINode object, healthy when the node
// is Ready and a handled CSI driver is registered on it. A node whose CSI node plugins are all
// gone cannot mount any of these volumes, whatever its kubelet says.
func (d *Driver) StorageNodes(ctx context.Context) ([]drivers.StorageNode, error) {
	var csiNodes storagev1.CSINodeList
	if err := d.c.List(ctx, &csiNodes); err != nil {
		return nil, fmt.Errorf("listing CSINodes: %w", err)
	}
	var out []drivers.StorageNode
	for i := range csiNodes.Items {
		cn := &csiNodes.Items[i]
		node := &corev1.Node{}
		if err := d.c.Get(ctx, client.ObjectKey{Name: cn.Name}, node); apierrors.IsNotFound(err) {
			continue // a CSINode outlives its Node for a moment
		} else if err != nil {
			return nil, fmt.Errorf("reading the Node of CSINode %s: %w", cn.Name, err)
		}
		out = append(out, d.storageNode(node, cn))
	}
	return out, nil
}

// storageNode is one node's storage: its topology from its labels, its health from its Ready
// condition and its registrations.
func (d *Driver) storageNode(node *corev1.Node, cn *storagev1.CSINode) drivers.StorageNode {
	sn := drivers.StorageNode{Node: node.Name, Topology: nodeTopology(node), Health: storkv1.StorageHealthy}
	if ready := nodeCondition(node, corev1.NodeReady); ready == nil || ready.Status == corev1.ConditionUnknown {
		sn.Health, sn.Reason = storkv1.StorageUnknown, "the node's kubelet stopped reporting (Ready is Unknown)"
		return sn
	} else if ready.Status == corev1.ConditionFalse {
		sn.Health, sn.Reason = storkv1.StorageDown, "the node is not Ready: "+ready.Message
		return sn
	}
	var registered []string
	for _, dr := range cn.Spec.Drivers {
		if d.handles(dr.Name) {
			registered = append(registered, dr.Name)
		}
	}
	if len(registered) == 0 {
		sn.Health, sn.Reason = storkv1.StorageDown, "no handled CSI driver is registered in the node's CSINode"
	}
	return sn
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func nodeTopology(n *corev1.Node) storkv1.Topology {
	return storkv1.Topology{Region: n.Labels[storkv1.LabelRegion], Zone: n.Labels[storkv1.LabelZone], Rack: n.Labels[storkv1.LabelRack]}
}

// registered reports whether the CSI driver is registered in the node's CSINode.
func registered(cn *storagev1.CSINode, csiDriver string) bool {
	return slices.ContainsFunc(cn.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == csiDriver })
}

// Locate implements drivers.Driver. A volume pinned to one node (a node-local CSI driver) has
// its copy there, usable while the node is Ready and the CSI driver is registered on it; any
// other volume is reachable from the zone and region of its node affinity.
func (d *Driver) Locate(ctx context.Context, v drivers.Volume) (drivers.Location, error) {
	if !d.Owns(v) || v.PV == nil {
		return drivers.Location{}, fmt.Errorf("locating a volume: %w", drivers.ErrNotOwned)
	}
	topo, host := volumeTopology(v.PV)
	if host == "" {
		return drivers.Location{Topology: topo}, nil
	}
	r := drivers.Replica{Node: host, Topology: topo}
	node, cn := &corev1.Node{}, &storagev1.CSINode{}
	nodeErr := d.c.Get(ctx, client.ObjectKey{Name: host}, node)
	csiErr := d.c.Get(ctx, client.ObjectKey{Name: host}, cn)
	if nodeErr == nil {
		r.Topology = nodeTopology(node)
	}
	r.Healthy = nodeErr == nil && csiErr == nil && registered(cn, csiDriver(v.PV)) &&
		d.storageNode(node, cn).Health == storkv1.StorageHealthy
	return drivers.Location{Replicas: []drivers.Replica{r}, Topology: r.Topology}, nil
}
