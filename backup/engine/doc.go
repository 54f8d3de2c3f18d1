// Package engine is the home of the backup engine: the packages that store directory trees and
// Kubernetes objects in object stores, deduplicated, compressed and encrypted, and read them
// back, without Kubernetes. objstore reaches the stores (S3, GCS, Azure, file://); repo is
// the repository format (packs, indexes, keys, snapshots, prune); archive walks and restores
// trees (its file, blob and tree savers); retention chooses what to keep; catalog is a
// Backup's record and Kubernetes objects; resources strips and maps those objects; transfer is
// one upload or download as an agent or mover runs it; access is how to reach a location.
//
// The controllers (backup/controllers, restore) drive the engine; the agent, the movers and
// storkctl call it directly. Nothing here imports a controller library: the engine can be
// tested, benchmarked and used (storkctl repo) with no cluster at all.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package engine
