// Package version holds the version of Stork's binaries, set at build time with
// -ldflags "-X stork.dev/stork/internal/version.Version=…".
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package version
