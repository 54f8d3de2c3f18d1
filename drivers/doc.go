// Package drivers defines how Stork talks to storage: the Driver interface every driver
// implements (ownership of volumes, storage nodes with health and topology, where a volume's data
// lives), optional capability interfaces (Snapshotter, Restorer, Exporter, Importer) discovered by
// type assertion, and the registry through which drivers are made available by name.
//
// Each driver lives in a subpackage (drivers/local, drivers/csi, …) that registers a Factory in its
// init function; drivers/fake is an in-memory driver for unit tests only. Drivers may import
// api/, the backup engine and Kubernetes libraries, never Stork's controllers: they import it.
//
// Layer: drivers. May import: lib, api, engine, drivers.
package drivers
