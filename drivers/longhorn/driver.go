package longhorn

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"stork.dev/stork/drivers"
)

// Name is the driver's name.
const Name = "longhorn"

// CSIDriver is the name of Longhorn's CSI driver, in PersistentVolumes and StorageClasses.
const CSIDriver = "driver.longhorn.io"

// Config keys (stork --driver-config longhorn.namespace=storage).
const (
	// ConfigNamespace is the namespace of Longhorn's objects (default longhorn-system).
	ConfigNamespace = "longhorn.namespace"
)

// DefaultNamespace is where Longhorn installs itself unless told otherwise.
const DefaultNamespace = "longhorn-system"

// The API group and version of the Longhorn objects the driver reads, and their resources.
const (
	Group            = "longhorn.io"
	Version          = "v1beta2"
	ResourceVolumes  = "volumes"
	ResourceReplicas = "replicas"
	ResourceNodes    = "nodes"
)

// GVR returns the GroupVersionResource of one of Longhorn's resources (ResourceVolumes, …).
func GVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: Group, Version: Version, Resource: resource}
}

func init() {
	// Before the catch-all drivers (csi): a Longhorn volume is this driver's.
	drivers.Register(Name, 20, func(o drivers.Options) (drivers.Driver, error) { return New(o) })
}

// Driver is the Longhorn driver. Its answers come from an index of Longhorn's objects that the
// informers started by SetupWithManager keep (or that tests feed through Observe).
type Driver struct {
	dyn       dynamic.Interface
	namespace string
	log       logr.Logger
	idx       *index
	synced    atomic.Bool
	// started is set once SetupWithManager's informers run: from then on the index is only
	// trusted while synced.
	started atomic.Bool
}

var _ drivers.ControllerOwner = (*Driver)(nil)

// New makes the driver from its options. Without a RESTConfig (unit tests) the driver is made,
// but its informers cannot start: SetupWithManager fails.
func New(o drivers.Options) (*Driver, error) {
	var dyn dynamic.Interface
	if o.RESTConfig != nil {
		var err error
		if dyn, err = dynamic.NewForConfig(o.RESTConfig); err != nil {
			return nil, fmt.Errorf("making a dynamic client for Longhorn's objects: %w", err)
		}
	}
	return NewWithClient(dyn, o.Config[ConfigNamespace], o.Log), nil
}

// NewWithClient makes the driver with a given dynamic client (nil when the index is only fed
// through Observe), reading Longhorn's objects in namespace (DefaultNamespace when empty).
func NewWithClient(dyn dynamic.Interface, namespace string, log logr.Logger) *Driver {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return &Driver{dyn: dyn, namespace: namespace, log: log, idx: newIndex()}
}

// Name implements drivers.Driver.
func (d *Driver) Name() string { return Name }

// Owns implements drivers.Driver: a PersistentVolume of Longhorn's CSI driver or, while the
// claim is unbound, a claim whose storage class Longhorn provisions.
func (d *Driver) Owns(v drivers.Volume) bool {
	if v.PV != nil {
		return v.PV.Spec.CSI != nil && v.PV.Spec.CSI.Driver == CSIDriver
	}
	return v.StorageClass != nil && v.StorageClass.Provisioner == CSIDriver
}

// StorageNodes implements drivers.Driver: one storage node per Longhorn Node, sorted by name.
// Longhorn has no heartbeat of its own, so LastSeen stays zero.
func (d *Driver) StorageNodes(context.Context) ([]drivers.StorageNode, error) {
	if d.started.Load() && !d.synced.Load() {
		// An empty or partial index would read as "no storage": placement's monitor takes an
		// error for a stale view and acts on nothing.
		return nil, fmt.Errorf("the Longhorn objects in namespace %s are not synced yet", d.namespace)
	}
	return d.idx.storageNodes(), nil
}

// Locate implements drivers.Driver: the nodes of the volume's scheduled replicas. A volume the
// informers have not seen (yet) has no replicas and no error: Synced tells whether the view is
// fresh.
func (d *Driver) Locate(_ context.Context, v drivers.Volume) (drivers.Location, error) {
	if !d.Owns(v) {
		return drivers.Location{}, fmt.Errorf("locating %s: %w", describe(v), drivers.ErrNotOwned)
	}
	if v.PV == nil {
		return drivers.Location{}, fmt.Errorf("locating %s: the claim is not bound yet", describe(v))
	}
	// Longhorn names its Volume after the CSI volume handle.
	return d.idx.locate(v.PV.Spec.CSI.VolumeHandle), nil
}

// Observe records a Longhorn Volume, Replica or Node (by kind; other objects, including core
// Nodes, are ignored), replacing what was known of it. The informers' handlers call it, and so do
// tests and benchmarks that feed the index without an API server.
func (d *Driver) Observe(obj *unstructured.Unstructured) {
	if kind, ok := longhornKind(obj); ok {
		d.idx.observe(kind, obj)
	}
}

// Forget removes a Longhorn Volume, Replica or Node, as Observe records it.
func (d *Driver) Forget(obj *unstructured.Unstructured) {
	if kind, ok := longhornKind(obj); ok {
		d.idx.forget(kind, obj)
	}
}

// longhornKind returns obj's kind when it is one of Longhorn's the index keeps.
func longhornKind(obj *unstructured.Unstructured) (string, bool) {
	if obj == nil || obj.GroupVersionKind().Group != Group {
		return "", false
	}
	switch k := obj.GetKind(); k {
	case kindVolume, kindReplica, kindNode:
		return k, true
	}
	return "", false
}

// Synced reports whether the informers have delivered the full list of every resource to the
// index: before that, an empty answer may only mean "not read yet". It turns false again when
// the informers stop.
func (d *Driver) Synced() bool { return d.synced.Load() }

// SetupWithManager implements drivers.ControllerOwner: it adds the informers that keep the index
// to the manager.
func (d *Driver) SetupWithManager(mgr ctrl.Manager) error {
	if d.dyn == nil {
		return errors.New("the longhorn driver was made without a connection to the API server (no RESTConfig): it cannot watch Longhorn's objects")
	}
	// A cluster without Longhorn: the driver stays enabled (it owns nothing there) but starts no
	// informers, which would never sync and keep the placement view stale.
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("making a discovery client: %w", err)
	}
	if _, err := dc.ServerResourcesForGroupVersion(Group + "/" + Version); err != nil {
		if apierrors.IsNotFound(err) {
			d.log.Info("Longhorn is not installed (no " + Group + "/" + Version + " API): the longhorn driver has nothing to watch")
			return nil
		}
		return fmt.Errorf("looking for Longhorn's API %s/%s: %w", Group, Version, err)
	}
	if err := mgr.Add(&informers{d: d}); err != nil {
		return fmt.Errorf("adding the Longhorn informers to the manager: %w", err)
	}
	return nil
}

// informers is the manager.Runnable that watches Longhorn's objects into the driver's index.
type informers struct {
	d *Driver
}

var (
	_ manager.Runnable               = (*informers)(nil)
	_ manager.LeaderElectionRunnable = (*informers)(nil)
)

// NeedLeaderElection is false: every Stork replica serves scheduling requests from its own index.
func (r *informers) NeedLeaderElection() bool { return false }

// Start runs the informers until ctx ends.
func (r *informers) Start(ctx context.Context) error {
	d := r.d
	d.started.Store(true)
	// No resync: the index is the only consumer and is kept by events alone.
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(d.dyn, 0, d.namespace, nil)
	var synced []cache.InformerSynced
	for _, w := range []struct{ resource, kind string }{
		{ResourceVolumes, kindVolume}, {ResourceReplicas, kindReplica}, {ResourceNodes, kindNode},
	} {
		inf := f.ForResource(GVR(w.resource)).Informer()
		if err := inf.SetTransform(trim(w.kind)); err != nil {
			return fmt.Errorf("setting up the informer of Longhorn %s: %w", w.resource, err)
		}
		reg, err := inf.AddEventHandler(d.handler(w.kind))
		if err != nil {
			return fmt.Errorf("adding the handler of the informer of Longhorn %s: %w", w.resource, err)
		}
		// The registration's HasSynced, not the informer's: it is true only once the handler
		// (so the index) has received the initial list, not merely the informer's store.
		synced = append(synced, reg.HasSynced)
	}
	d.log.Info("watching Longhorn objects", "namespace", d.namespace)
	f.Start(ctx.Done())
	// WaitForCacheSync returns false only when ctx ends first.
	if cache.WaitForCacheSync(ctx.Done(), synced...) {
		d.synced.Store(true)
		d.log.Info("Longhorn objects synced", "namespace", d.namespace)
	}
	<-ctx.Done()
	// Stopped: the index is no longer kept, whatever it holds.
	d.synced.Store(false)
	f.Shutdown()
	return nil
}

// handler keeps the index from the events of the informer of one kind. The kind comes from the
// informer, not the object, which need not carry it.
func (d *Driver) handler(kind string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				d.idx.observe(kind, u)
			}
		},
		UpdateFunc: func(_, obj any) {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				d.idx.observe(kind, u)
			}
		},
		DeleteFunc: func(obj any) {
			// A delete missed while the watch was down arrives as a tombstone.
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				d.idx.forget(kind, u)
			}
		},
	}
}

// trim is the transform of the informer of kind: it keeps only the fields the index reads (and
// the metadata the informer needs), because the informer's store holds every object besides the
// index, and Longhorn's objects are mostly fields Stork never reads (managed fields, a Node's list
// of every replica on each disk). It is idempotent, as transforms must be.
func trim(kind string) cache.TransformFunc {
	return func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		out := &unstructured.Unstructured{Object: map[string]any{}}
		keep := func(path ...string) {
			if v, found, _ := unstructured.NestedFieldNoCopy(u.Object, path...); found {
				setField(out.Object, v, path...)
			}
		}
		keep("apiVersion")
		keep("kind")
		for _, f := range []string{"name", "namespace", "uid", "resourceVersion", "deletionTimestamp"} {
			keep("metadata", f)
		}
		switch kind {
		case kindVolume:
			keep("status", "robustness")
		case kindReplica:
			keep("spec", "volumeName")
			keep("spec", "nodeID")
			keep("spec", "failedAt")
			keep("status", "currentState")
		case kindNode:
			keep("spec", "allowScheduling")
			keep("status", "region")
			keep("status", "zone")
			keep("status", "conditions")
			if disks, ok := field(u.Object, "status", "diskStatus").(map[string]any); ok {
				trimmed := make(map[string]any, len(disks))
				for name, d := range disks {
					dm, ok := d.(map[string]any)
					if !ok {
						continue
					}
					td := map[string]any{}
					for _, f := range []string{"storageMaximum", "storageAvailable", "conditions"} {
						if v, ok := dm[f]; ok {
							td[f] = v
						}
					}
					trimmed[name] = td
				}
				setField(out.Object, trimmed, "status", "diskStatus")
			}
		}
		return out, nil
	}
}

// setField sets the value at path, making the maps on the way. Unlike
// unstructured.SetNestedField it does not copy v: trim hands the values of an object the informer
// drops to the one it keeps.
func setField(obj map[string]any, v any, path ...string) {
	for _, f := range path[:len(path)-1] {
		next, ok := obj[f].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[f] = next
		}
		obj = next
	}
	obj[path[len(path)-1]] = v
}

// describe names a volume for error messages.
func describe(v drivers.Volume) string {
	switch {
	case v.PV != nil:
		return "PersistentVolume " + v.PV.Name
	case v.Claim != nil:
		return "PersistentVolumeClaim " + v.Claim.Namespace + "/" + v.Claim.Name
	}
	return "a volume"
}
