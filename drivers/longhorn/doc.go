// Package longhorn is the driver for Longhorn volumes (CSI driver driver.longhorn.io): replicated
// block storage whose replicas live on particular nodes. It tells placement which nodes have
// healthy Longhorn storage and on which nodes each volume's replicas are; it has no snapshot,
// restore or backup capabilities.
//
// The driver reads Longhorn's own objects (longhorn.io/v1beta2 Volumes, Replicas and Nodes in
// Longhorn's namespace) with a dynamic client and dynamic informers, and keeps what it needs of
// them in an in-memory index, so that every driver call is a map lookup: placement calls Locate on
// every scheduling request, and clusters with tens of thousands of volumes are common.
//
// Stork does not import Longhorn's Go module: its dependencies are heavy and would tie Stork's
// Kubernetes libraries to Longhorn's. Only a handful of fields are read, by path, from unstructured
// objects:
//
//   - Volume: status.robustness.
//   - Replica: spec.volumeName, spec.nodeID, spec.failedAt, status.currentState.
//   - Node: spec.allowScheduling, status.region, status.zone, status.conditions (Ready,
//     Schedulable) and, per disk in status.diskStatus, storageMaximum, storageAvailable and the
//     disk's Ready and Schedulable conditions.
//
// The informers trim objects to these fields before storing them, and a malformed field is
// ignored, never the whole object. testdata/crds.yaml (see CRDs) holds
// minimal CustomResourceDefinitions for tests; real clusters run with Longhorn's own.
//
// Layer: drivers. May import: lib, api, engine, drivers.
package longhorn
