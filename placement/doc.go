// Package placement puts pods where their data is (docs/placement.md):
//
//   - View: node topology and every driver's storage nodes, kept in memory and flattened into a
//     table for the extender's loops (view.go, table.go);
//   - Extender: kube-scheduler's filter and prioritize, scoring nodes by where each volume's
//     usable copies are — node, rack, zone, region — and by storage health (extender.go,
//     score.go, wire.go), served by Server;
//   - Monitor: evicts pods from nodes whose storage stayed down past a probation, and stands
//     down when its view is stale or most storage looks down at once (monitor.go);
//   - Failover: restores opted-in local volumes from their latest backup onto a healthy node of
//     their zone and repoints their claims (failover.go).
//
// The pod webhook that sends pods with Stork volumes to the stork scheduler is in
// placement/webhook. Scheduling requests never wait on the API server or a driver.
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package placement
