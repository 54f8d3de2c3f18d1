// Package repocli is the command line of a backup repository with no cluster: init, backup,
// restore, ls, check, forget, prune and backups, on a repository named by --location (the
// break-glass path of disaster recovery). storkctl mounts it as `storkctl repo`; the stork-repo
// command is it alone, without the Kubernetes client libraries (a smaller binary that starts
// with a third less resident memory).
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package repocli
