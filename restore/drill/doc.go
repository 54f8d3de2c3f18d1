// Package drill runs RestoreDrills: once or on a cron schedule, it restores an application's
// newest backup into a sandbox namespace through an ordinary Restore (in Stork's namespace, with
// spec.verify, so every file is compared with the checksums recorded at backup time), measures
// the recovery time, records the result on the drill and on the Backup (condition Verified),
// and deletes the sandbox.
//
// A drill never restores itself: the Restore controller (package restore) does the work, so a
// drill proves exactly the path a real recovery takes.
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package drill
