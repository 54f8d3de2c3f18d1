// Command extender measures Stork's scheduler extender the way kube-scheduler uses it: for each
// pod, a filter then a prioritize request over HTTP with the names of every node (the
// extender is nodeCacheCapable), answered from the in-memory view of 5,000 nodes and 20,000
// Longhorn volumes with 3 replicas each. It prints p50/p90/p99/max latencies and requests per
// second, sequentially and with one client per core.
//
// There is no peer to run beside it: upstream Stork's extender (libopenstorage/stork) is not
// served by the module proxy here, and kube-scheduler has no in-tree equivalent. The figure to
// beat is the target of issue 6: p99 of filter+prioritize under 5 ms on this machine.
//
// Usage: go run ./hack/bench/extender [-nodes 5000] [-volumes 20000] [-pods 2000] [-json FILE]
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package main
