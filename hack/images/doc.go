// Command images builds Stork's container images (`make images`): it compiles static
// binaries of stork, stork-agent and storkctl (CGO off, -trimpath, no VCS stamp, so that the
// same source gives the same bytes) and the sandbox process pause, and puts them on a minimal
// base made here (internal/images): the image stork:VERSION (entrypoint /stork; the agent and
// the movers run /stork-agent), stork-pause:VERSION and stork-testapp:VERSION (the real-node
// tests' application). It writes an OCI layout and
// `ctr images import` tarballs into -out and prints each image's digest; -push REGISTRY
// also pushes them there.
//
// Usage: go run ./hack/images [-out bin/images] [-version dev] [-push REGISTRY]
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package main
