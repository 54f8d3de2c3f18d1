// Package cli holds what Stork's command lines share: the main function's run (garbage
// collector target, error and exit code), byte progress bars that show only on a terminal, and
// repeated KEY=VALUE flags. storkctl and stork-repo use it.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package cli
