// Package version holds the version of Stork's binaries, set at build time with
// -ldflags "-X stork.dev/stork/internal/version.Version=…".
package version
