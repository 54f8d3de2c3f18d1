// Command storkctl is Stork's command line: it creates and follows Snapshots, Backups and
// Restores in a cluster, and reads backup repositories directly when there is no cluster. The
// commands arrive with the features they drive; this version identifies itself.
//
// Layer: cmd. May import: lib, api, engine, drivers, kit, controllers.
package main
