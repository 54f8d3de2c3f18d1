// Package images builds Stork's container images without Docker, with go-containerregistry:
// a minimal base made here (no registry is reachable from the build: /etc/passwd and
// /etc/group with a non-root user, a sticky /tmp, the host's CA bundle), an image of Stork's
// static binaries on it (controller, agent and mover: one image, several commands), and a
// pause image for kubelets' pod sandboxes. Images are reproducible: every file has a fixed
// time and owner, the config a fixed creation time, so the same binaries give the same digest.
// They are written as an OCI layout and as tarballs `ctr images import` reads, and can be
// pushed to a registry. `make images` runs hack/images.
//
// Layer: testkit. May import: lib, api, engine, drivers, kit, controllers, testkit.
package images
