// Package schedules runs SnapshotSchedules: it creates Snapshots from a template at the times a
// cron expression (robfig/cron/v3, with time zones) names, skips runs while one is going when
// asked to, catches up at most once after downtime, and applies retention
// (keepLast/Hourly/Daily/Weekly/Monthly) to the Snapshots and Backups it made.
//
// It acts only through Snapshot objects, never through drivers or the backup engine's
// repositories; it uses the engine's retention rules alone.
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package schedules
