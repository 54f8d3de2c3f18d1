// Package layers holds Stork's import rule and checks it: every package says in its doc.go
// which layer ("room") it lives in, and a package may import only packages of the rooms its
// room's rule lists (Rules). The test of this package loads the module's package graph with
// `go list` and fails, naming the import, when a package reaches upward; `make test` runs it.
// docs/design.md draws the picture.
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package layers
