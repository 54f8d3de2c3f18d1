package placement

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/drivers"
)

// View is what placement knows about the cluster, kept in memory so that a scheduling request
// never waits on the API server or a driver: each node's topology (from a metadata-only Node
// informer) and each driver's storage nodes (asked of the drivers every Every, from their own
// caches). The extender and the health monitor share one View.
type View struct {
	Drivers *drivers.Set
	// Every is the time between refreshes of the drivers' storage nodes (default 2s).
	Every time.Duration
	Log   logr.Logger

	storage atomic.Pointer[storageView]

	mu    sync.RWMutex
	nodes map[string]storkv1.Topology
}

// storageView is one refresh of every driver's storage nodes.
type storageView struct {
	// at is when the refresh finished.
	at      time.Time
	drivers map[string]driverView
	// table is the nodes and their storage flattened for the extender.
	table *table
}

type driverView struct {
	nodes map[string]drivers.StorageNode
	// err is why the driver's storage nodes could not be listed; nodes is empty then.
	err error
}

// NewView makes a View of the drivers' storage.
func NewView(set *drivers.Set, log logr.Logger) *View {
	return &View{Drivers: set, Log: log, nodes: map[string]storkv1.Topology{}}
}

// WatchNodes keeps the View's node topology current from the cache's Node metadata informer.
// Only labels are needed, so the informer holds metadata, not whole Nodes.
func (v *View) WatchNodes(ctx context.Context, c cache.Cache) error {
	nodeMeta := &metav1.PartialObjectMetadata{}
	nodeMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	inf, err := c.GetInformer(ctx, nodeMeta)
	if err != nil {
		return fmt.Errorf("watching Nodes for their topology: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { v.observeNode(o) },
		UpdateFunc: func(_, o any) { v.observeNode(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if m, ok := o.(metav1.Object); ok {
				v.ForgetNode(m.GetName())
			}
		},
	})
	return err
}

func (v *View) observeNode(o any) {
	if m, ok := o.(metav1.Object); ok {
		v.SetNode(m.GetName(), m.GetLabels())
	}
}

// SetNode records a node's topology from its labels. The extender sees it from the next
// refresh (Every) on.
func (v *View) SetNode(name string, labels map[string]string) {
	t := storkv1.Topology{Region: labels[storkv1.LabelRegion], Zone: labels[storkv1.LabelZone], Rack: labels[storkv1.LabelRack]}
	v.mu.Lock()
	v.nodes[name] = t
	v.mu.Unlock()
}

// ForgetNode drops a deleted node.
func (v *View) ForgetNode(name string) {
	v.mu.Lock()
	delete(v.nodes, name)
	v.mu.Unlock()
}

// nodeTable is the last refresh's table; an empty one before the first.
func (v *View) nodeTable() *table {
	if s := v.storage.Load(); s != nil {
		return s.table
	}
	return buildTable(nil, nil)
}

// Storage returns a driver's storage node on a node, and whether the driver has storage there.
func (v *View) Storage(driver, node string) (drivers.StorageNode, bool) {
	s := v.storage.Load()
	if s == nil {
		return drivers.StorageNode{}, false
	}
	n, ok := s.drivers[driver].nodes[node]
	return n, ok
}

// StorageNodes returns a driver's storage nodes from the last refresh, when it was made, and the
// driver's error if listing failed. A zero time means there was no refresh yet.
func (v *View) StorageNodes(driver string) (map[string]drivers.StorageNode, time.Time, error) {
	s := v.storage.Load()
	if s == nil {
		return nil, time.Time{}, nil
	}
	d := s.drivers[driver]
	return d.nodes, s.at, d.err
}

// Refresh asks every driver for its storage nodes now.
func (v *View) Refresh(ctx context.Context) {
	next := &storageView{drivers: map[string]driverView{}}
	for _, d := range v.Drivers.All() {
		list, err := d.StorageNodes(ctx)
		dv := driverView{nodes: make(map[string]drivers.StorageNode, len(list)), err: err}
		if err != nil {
			v.Log.Error(err, "listing storage nodes", "driver", d.Name())
		}
		for _, n := range list {
			dv.nodes[n.Node] = n
		}
		next.drivers[d.Name()] = dv
	}
	v.mu.RLock()
	next.table = buildTable(v.nodes, next.drivers)
	v.mu.RUnlock()
	next.at = time.Now()
	v.storage.Store(next)
}

// Start refreshes the drivers' storage nodes every Every until ctx ends (a manager.Runnable).
func (v *View) Start(ctx context.Context) error {
	every := v.Every
	if every <= 0 {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		v.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Ready is a readiness check: a replica answers the scheduler only once it has asked every
// driver for its storage nodes without error (Longhorn's informers have synced, say), so that a
// restarted replica never places pods without knowing where storage is down.
func (v *View) Ready(*http.Request) error {
	s := v.storage.Load()
	if s == nil {
		return errors.New("the placement view has not been refreshed yet")
	}
	for name, d := range s.drivers {
		if d.err != nil {
			return fmt.Errorf("driver %s: %w", name, d.err)
		}
	}
	return nil
}

// NeedLeaderElection is false: every Stork replica serves scheduling requests.
func (v *View) NeedLeaderElection() bool { return false }

// usable reports whether a storage node can serve its volumes now.
func usable(h storkv1.StorageHealth) bool {
	return h == storkv1.StorageHealthy || h == storkv1.StorageDegraded
}
