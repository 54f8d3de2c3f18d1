// Package e2e holds Stork's end-to-end tests: real control planes (etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager built from pinned modules), a real MinIO, and Stork's
// own binaries as processes, driven through the API as users would. internal/harness starts and
// stops all of it; demo/ is `make demo`. Nothing imports this tree.
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package e2e
