package drivers

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Driver is the core every storage driver implements: what it owns, where its storage is and
// how healthy it is, and where a volume's data lives. Everything else a driver can do is an
// optional capability (Snapshotter, Restorer, Exporter, Importer) found by type assertion, so a
// driver that only knows placement is still a complete driver.
type Driver interface {
	// Name is the driver's unique name, as in StorageNode.spec.driver and status fields.
	Name() string
	// Owns reports whether the driver manages the volume. It must decide from the objects
	// alone (no API calls), because placement asks it on every scheduling request.
	Owns(v Volume) bool
	// StorageNodes lists the nodes that have this driver's storage, with topology and health.
	StorageNodes(ctx context.Context) ([]StorageNode, error)
	// Locate says where the volume's data lives. The volume must be bound (v.PV set).
	Locate(ctx context.Context, v Volume) (Location, error)
}

// Volume is a claim and what it is bound to, as the caller found them in its caches.
type Volume struct {
	// Claim may be nil when only the PersistentVolume is known.
	Claim *corev1.PersistentVolumeClaim
	// PV is nil while the claim is unbound.
	PV *corev1.PersistentVolume
	// StorageClass is nil when the claim names none or it is not found.
	StorageClass *storagev1.StorageClass
}

// StorageNode is one node's storage as a driver sees it.
type StorageNode struct {
	// Node is the Kubernetes Node's name.
	Node string
	// Topology of the node.
	Topology storkv1.Topology
	// Health of the storage on the node.
	Health storkv1.StorageHealth
	// Reason explains a health other than Healthy, for a person.
	Reason string
	// Capacity of the node's storage, when the driver knows it.
	Capacity storkv1.StorageCapacity
	// LastSeen is when the storage last reported itself (an agent's heartbeat), zero when
	// the driver has no such signal. Placement's health monitor takes a cluster where every
	// node went unseen at once for its own stale view, and acts on nothing.
	LastSeen time.Time
}

// Location is where a volume's data lives.
type Location struct {
	// Replicas are the nodes that hold a full copy of the data, best first. Empty for
	// storage reachable from a whole zone or region (e.g. a zonal cloud disk).
	Replicas []Replica
	// Topology of the data when it is not on particular nodes: the widest domain that
	// can attach the volume.
	Topology storkv1.Topology
}

// Replica is one node's copy of a volume.
type Replica struct {
	Node     string
	Topology storkv1.Topology
	// Healthy is false when the copy exists but cannot serve I/O now.
	Healthy bool
}

// ErrNotOwned is returned (wrapped) when a driver is asked about a volume it does not own.
var ErrNotOwned = errors.New("volume is not owned by this driver")
