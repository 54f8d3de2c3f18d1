// Command stork-repo works on a backup repository with no cluster: the commands of `storkctl
// repo` (init, backup, restore, ls, check, forget, prune, backups) in a binary that links no
// Kubernetes client library. It is the tool for a rescue host, and the one the benchmarks run
// against restic and kopia: 28% smaller than storkctl, it starts with a third less resident
// memory (docs/performance.md).
//
// Layer: cmd. May import: lib, api, engine, drivers, kit, controllers.
package main
