// Package catalogtest is an in-memory catalog.Catalog for the reconcilers' unit tests: Backups'
// records and objects kept in maps, with errors to inject per operation, so that a test can
// show what a reconciler does when the repository refuses a write without running a store.
//
// Layer: testkit. May import: lib, api, engine, drivers, kit, controllers, testkit.
package catalogtest
