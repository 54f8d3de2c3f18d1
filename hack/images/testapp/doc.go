// Command testapp is the application of the real-node tests (image stork-testapp): a stand-in
// for a database that keeps files in a volume. The images have no shell, so everything a test
// runs in the pod, the application itself and the commands of Snapshot hooks, is a subcommand:
//
//	testapp run DIR...  writes a tree of files into each DIR unless it has one, prints their
//	                    sums, and waits for SIGTERM (the application)
//	testapp hook DIR N  writes DIR/N with the time, for a pre-snapshot hook to leave a trace
//	testapp sum DIR...  prints each tree's sum (internal/treesum): "tree-sum HEX files N bytes B dir DIR"
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package main
