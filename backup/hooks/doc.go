// Package hooks runs a Snapshot's pre and post hooks: commands executed in the containers of
// selected pods through the API server's pods/exec endpoint (as `kubectl exec` does), each with
// a timeout, reporting one result per pod. The Executor interface separates the runner's
// decisions (which pods, which container, what counts as failure) from the exec transport, so
// that the runner is unit-tested with a fake executor and the transport against a real API server.
//
// Layer: kit. May import: lib, api, engine, drivers, kit.
package hooks
