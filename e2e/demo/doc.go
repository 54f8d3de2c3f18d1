// Command demo is `make demo`: it starts two local Kubernetes control planes, site A in zone-a
// and zone-b and site B in zone-c and zone-d, with simulated nodes; runs Stork on both; and
// tells the disaster-recovery story: an application's data is snapshotted and restored on site
// A, a schedule backs it up with its objects every minute into a file:// bucket, site B sees the
// backup through sync and restores the application into another namespace and other zones, and
// the data is proven identical. Finally storkctl restores a volume from the bucket alone. It keeps
// the clusters up until interrupted (or for --wait), then stops everything it started.
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package main
