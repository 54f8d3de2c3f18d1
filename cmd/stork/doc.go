// Command stork is Stork's controller manager: it runs Stork's controllers (snapshots, backups,
// schedules, restores, placement) against one cluster. This first version sets up the manager,
// its health and metrics endpoints and the storage drivers; the controllers are added by the
// packages backup/, restore/, schedules/ and placement/ as they land.
//
// Layer: cmd. May import: lib, api, engine, drivers, kit, controllers.
package main
