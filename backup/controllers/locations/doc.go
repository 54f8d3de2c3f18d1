// Package locations checks BackupLocations: it reads their credentials and encryption key from
// Secrets, opens the object store, probes it (list, and for writable locations write, read back
// and delete an object), opens the backup repository there — initialising it on first use —
// and reports Available or Unavailable with a reason a person can act on. It rechecks every
// sync period. Credentials never reach logs, Events or status. It also prunes the repositories
// of writable, Available locations every maintenance interval (maintenance.go).
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package locations
