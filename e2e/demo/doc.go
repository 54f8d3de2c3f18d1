// Command demo is `make demo`: it starts two local Kubernetes control planes, site A in zone-a
// and zone-b with simulated nodes and site B with a real node (kubelet, containerd, runc) in
// zone-c, or simulated nodes in zone-c and zone-d where no real node can run; runs Stork on both
// (on site B's real node installed with the Helm chart); and tells the disaster-recovery story:
// an application's data is snapshotted and restored on site A, a schedule backs it up with its
// objects every minute into a bucket (MinIO, or file:// without a real node), site B sees the
// backup through sync and restores the application into another namespace and other zones, the
// data is proven identical, and on the real node the restored application runs and reads it.
// Finally storkctl restores a volume from the bucket alone. It keeps the clusters up until
// interrupted (or for --wait), then stops everything it started.
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package main
