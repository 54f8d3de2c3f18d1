package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stork.dev/stork/internal/harness/csiplugin"
)

// CSIOptions describes the CSI control plane StartCSI starts.
type CSIOptions struct {
	// Driver is the CSI driver name (csiplugin.DefaultName when empty).
	Driver string
	// ClassPrefix starts the names of the storage and snapshot classes ("stork-csi" when empty).
	ClassPrefix string
	// TopologyKey is the node label the driver reports topology with
	// (csiplugin.DefaultTopologyKey, the standard zone label, when empty).
	TopologyKey string
}

// FailingSnapshotMessage is the error that snapshots of CSI.FailingSnapshotClass fail with.
const FailingSnapshotMessage = "injected snapshot failure: quota exceeded"

// CSI is a running CSI control plane: the test plugin with a real data path (see csiplugin),
// csi-provisioner, csi-snapshotter and snapshot-controller, with the objects that a driver's
// installation and the kubelets' plugin registration would make.
type CSI struct {
	Driver      string
	TopologyKey string
	// ImmediateClass and WFFCClass are StorageClasses of the driver with volumeBindingMode
	// Immediate and WaitForFirstConsumer.
	ImmediateClass, WFFCClass string
	// SnapshotClass is the default VolumeSnapshotClass; FailingSnapshotClass makes every
	// snapshot fail with FailingSnapshotMessage.
	SnapshotClass, FailingSnapshotClass string
	// Plugin serves the driver in the test process; its VolumeDir is a volume's data.
	Plugin *csiplugin.Plugin

	Provisioner, Snapshotter, SnapshotController *Process

	cluster  *Cluster
	nodes    []*nodePlugin // on real nodes
	sockDir  string
	stopOnce sync.Once
	stopErr  error
}

// StartCSI installs the snapshot CRDs, registers the driver (CSIDriver, and a CSINode on every
// node there is now: see RegisterCSINode for later ones), makes the classes, and starts the
// plugin and the sidecars, which it returns once they serve. Env.Close stops it all.
func (c *Cluster) StartCSI(ctx context.Context, opts CSIOptions) (*CSI, error) {
	bins, err := FindCSIBinaries()
	if err != nil {
		return nil, err
	}
	if opts.Driver == "" {
		opts.Driver = csiplugin.DefaultName
	}
	if opts.ClassPrefix == "" {
		opts.ClassPrefix = "stork-csi"
	}
	if opts.TopologyKey == "" {
		opts.TopologyKey = csiplugin.DefaultTopologyKey
	}
	dir, err := c.env.dir(c.Name + "-csi")
	if err != nil {
		return nil, err
	}
	s := &CSI{
		Driver:               opts.Driver,
		TopologyKey:          opts.TopologyKey,
		ImmediateClass:       opts.ClassPrefix + "-immediate",
		WFFCClass:            opts.ClassPrefix + "-wffc",
		SnapshotClass:        opts.ClassPrefix + "-default",
		FailingSnapshotClass: opts.ClassPrefix + "-failing",
		cluster:              c,
	}
	c.env.onClose(s.Stop)
	if err := s.start(ctx, bins, dir); err != nil {
		return nil, fmt.Errorf("starting CSI driver %s in cluster %s: %w (logs in %s)", s.Driver, c.Name, err, filepath.Join(c.env.Root, "logs"))
	}
	return s, nil
}

func (s *CSI) start(ctx context.Context, bins CSIBinaries, dir string) error {
	c := s.cluster
	var err error
	// The sidecars look for the snapshot APIs when they start.
	if err := c.installCRDs(ctx, bins.CRDs()); err != nil {
		return err
	}
	if err := s.register(ctx); err != nil {
		return err
	}
	if err := s.makeClasses(ctx); err != nil {
		return err
	}
	if s.Plugin, err = csiplugin.New(csiplugin.Options{Root: filepath.Join(dir, "plugin"), Name: s.Driver, TopologyKey: s.TopologyKey}); err != nil {
		return err
	}
	if s.sockDir, err = shortTempDir("stork-csi-"); err != nil {
		return err
	}
	if err := s.Plugin.Start(filepath.Join(s.sockDir, "csi.sock")); err != nil {
		return err
	}
	for _, n := range s.cluster.realNodeList() {
		np, err := s.serveNodePlugin(ctx, n)
		if err != nil {
			return fmt.Errorf("registering with the kubelet of node %s: %w", n.Name, err)
		}
		s.nodes = append(s.nodes, np)
	}
	return s.startSidecars(ctx, bins)
}

// shortTempDir makes a directory for a unix socket. Socket paths are limited to 107 bytes,
// which the harness root's subdirectories can exceed, so the socket gets a directory of its own
// (removed by Stop): in the temporary directory, or in /tmp if TMPDIR is long itself.
func shortTempDir(prefix string) (string, error) {
	parent := os.TempDir()
	if len(parent) > 64 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", fmt.Errorf("making a directory for a unix socket: %w", err)
	}
	return dir, nil
}

// startSidecars runs the sidecars as the admin and waits until each serves its metrics, which
// they do once they have found the driver (and snapshot-controller its CRDs). Every sidecar
// retries failed operations after at most 5s (5m by default), so that a test that removes a
// cause of failure sees the retry soon.
func (s *CSI) startSidecars(ctx context.Context, bins CSIBinaries) error {
	c := s.cluster
	common := []string{"--kubeconfig=" + c.Kubeconfig, "--leader-election=false", "--retry-interval-max=5s", "--v=3"}
	sidecars := []struct {
		name string
		proc **Process
		args []string
	}{
		{"snapshot-controller", &s.SnapshotController, nil},
		{"csi-snapshotter", &s.Snapshotter, []string{"--csi-address=" + s.Plugin.Endpoint(), "--extra-create-metadata"}},
		// No --feature-gates=Topology=true: the gate is GA in v6, on by default, and naming it
		// only logs that it will be removed, after which the flag would stop the provisioner.
		// --immediate-topology (the default) has immediate-binding claims provisioned in one of
		// the segments of the CSINodes, which is why the harness registers those.
		{"csi-provisioner", &s.Provisioner, []string{"--csi-address=" + s.Plugin.Endpoint(), "--extra-create-metadata"}},
	}
	// All start at once and are waited for in turn: they do not depend on each other.
	metrics := make([]string, len(sidecars))
	for i, sc := range sidecars {
		port, err := c.env.FreePort()
		if err != nil {
			return err
		}
		metrics[i] = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		args := append(append([]string{fmt.Sprintf("--http-endpoint=127.0.0.1:%d", port)}, common...), sc.args...)
		// csi-provisioner takes $KUBECONFIG over --kubeconfig: one set in the test's environment
		// would point it at another cluster.
		if *sc.proc, err = c.startComponent(c.Name+"-"+sc.name, bins.Path(sc.name), args, []string{"KUBECONFIG=" + c.Kubeconfig}); err != nil {
			return err
		}
	}
	for i, sc := range sidecars {
		if err := waitHTTP(ctx, *sc.proc, metrics[i], time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// installCRDs creates the CRDs of every YAML file in dir and waits until they are established.
func (c *Cluster) installCRDs(ctx context.Context, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("finding CRDs in %s: none (%v)", dir, err)
	}
	var names []string
	for _, f := range files {
		crds, err := readCRDs(f)
		if err != nil {
			return err
		}
		for _, crd := range crds {
			if err := c.Client.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
			}
			names = append(names, crd.Name)
		}
	}
	for _, name := range names {
		err := c.WaitFor(ctx, 30*time.Second, "CRD "+name+" to be established", func(ctx context.Context) (bool, error) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
				return false, err
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func readCRDs(path string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRDs: %w", err)
	}
	defer f.Close()
	var out []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(f), 4096)
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		err := dec.Decode(crd)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		if crd.Name != "" { // an empty document
			out = append(out, crd)
		}
	}
}

// register makes the objects that the driver's installation (CSIDriver) and the kubelets'
// plugin registration (a CSINode per simulated node) would: csi-provisioner reads the topology
// keys of the CSINodes and the values of those keys from the Nodes' labels. Real nodes' kubelets
// register the driver themselves (serveNodePlugin). The kubelet gives a pod's fsGroup to the
// driver's volumes (policy File), as most drivers of real file systems ask.
func (s *CSI) register(ctx context.Context) error {
	c := s.cluster
	driver := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: s.Driver},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(false),
			PodInfoOnMount:       ptr.To(false),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
			FSGroupPolicy:        ptr.To(storagev1.FileFSGroupPolicy),
		},
	}
	if err := c.Client.Create(ctx, driver); err != nil {
		return fmt.Errorf("creating CSIDriver %s: %w", s.Driver, err)
	}
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	real := map[string]bool{}
	for _, n := range c.realNodeList() {
		real[n.Name] = true
	}
	for _, n := range nodes.Items {
		if real[n.Name] {
			continue
		}
		if err := s.RegisterCSINode(ctx, n.Name); err != nil {
			return err
		}
	}
	return nil
}

// RegisterCSINode registers the driver on a node as its kubelet would: in the node's CSINode
// (made if missing), with the node name as node ID and the topology key if the node has that
// label. StartCSI does it for the nodes there are; tests call it for nodes they add later.
func (s *CSI) RegisterCSINode(ctx context.Context, nodeName string) error {
	c := s.cluster
	var node corev1.Node
	if err := c.Client.Get(ctx, client.ObjectKey{Name: nodeName}, &node); err != nil {
		return fmt.Errorf("registering CSI driver %s on node %s: %w", s.Driver, nodeName, err)
	}
	entry := storagev1.CSINodeDriver{Name: s.Driver, NodeID: nodeName}
	if _, ok := node.Labels[s.TopologyKey]; ok {
		entry.TopologyKeys = []string{s.TopologyKey}
	}
	var csiNode storagev1.CSINode
	err := c.Client.Get(ctx, client.ObjectKey{Name: nodeName}, &csiNode)
	switch {
	case apierrors.IsNotFound(err):
		// The kubelet makes the Node the owner, so the CSINode goes with it.
		csiNode = storagev1.CSINode{
			ObjectMeta: metav1.ObjectMeta{Name: nodeName, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{entry}},
		}
		err = c.Client.Create(ctx, &csiNode)
	case err == nil:
		for _, d := range csiNode.Spec.Drivers {
			if d.Name == s.Driver {
				return nil
			}
		}
		csiNode.Spec.Drivers = append(csiNode.Spec.Drivers, entry)
		err = c.Client.Update(ctx, &csiNode)
	}
	if err != nil {
		return fmt.Errorf("registering CSI driver %s on node %s: %w", s.Driver, nodeName, err)
	}
	return nil
}

// makeClasses makes the storage and snapshot classes. The first VolumeSnapshotClass takes
// two seconds: kube-apiserver holds every create of a custom resource for 2s while its CRD
// was established less than 2s ago (for HA API servers to catch up), a cost StartCSI pays once.
func (s *CSI) makeClasses(ctx context.Context) error {
	storageClass := func(name string, mode storagev1.VolumeBindingMode) *storagev1.StorageClass {
		return &storagev1.StorageClass{
			ObjectMeta:           metav1.ObjectMeta{Name: name},
			Provisioner:          s.Driver,
			ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimDelete),
			VolumeBindingMode:    ptr.To(mode),
			AllowVolumeExpansion: ptr.To(true),
		}
	}
	objs := []client.Object{
		storageClass(s.ImmediateClass, storagev1.VolumeBindingImmediate),
		storageClass(s.WFFCClass, storagev1.VolumeBindingWaitForFirstConsumer),
		&snapshotv1.VolumeSnapshotClass{
			ObjectMeta: metav1.ObjectMeta{Name: s.SnapshotClass, Annotations: map[string]string{
				"snapshot.storage.kubernetes.io/is-default-class": "true"}},
			Driver:         s.Driver,
			DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete,
		},
		&snapshotv1.VolumeSnapshotClass{
			ObjectMeta:     metav1.ObjectMeta{Name: s.FailingSnapshotClass},
			Driver:         s.Driver,
			DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete,
			Parameters:     map[string]string{csiplugin.ParamFail: FailingSnapshotMessage},
		},
	}
	for _, o := range objs {
		if err := s.cluster.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// VolumeDir is the data directory of the volume with the given handle (a PV's
// spec.csi.volumeHandle).
func (s *CSI) VolumeDir(handle string) string { return s.Plugin.VolumeDir(handle) }

// Stop stops the sidecars, then the plugin (its node services first), and removes the socket's directory; the plugin's
// state stays under the harness root. Env.Close calls it; calling it again does nothing.
func (s *CSI) Stop() error {
	s.stopOnce.Do(func() {
		var errs []error
		for _, p := range []*Process{s.Provisioner, s.Snapshotter, s.SnapshotController} {
			if p != nil {
				errs = append(errs, p.Stop(15*time.Second))
			}
		}
		for _, np := range s.nodes {
			np.stop()
		}
		if s.Plugin != nil {
			s.Plugin.Stop()
		}
		if s.sockDir != "" {
			errs = append(errs, os.RemoveAll(s.sockDir))
		}
		if err := errors.Join(errs...); err != nil {
			s.stopErr = fmt.Errorf("stopping CSI driver %s: %w", s.Driver, err)
		}
	})
	return s.stopErr
}
