// Package retention decides which of a series of point-in-time copies (repository snapshots,
// Snapshot and Backup objects) a keep-policy keeps. It knows nothing of what the items are.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package retention
