// Package archive stores directory trees — a volume's content — in a backup repository and brings
// them back: backup walks the tree, chunks files with a keyed content-defined chunker, stores new
// chunks in parallel and records each directory as a tree blob with full metadata (modes,
// owners, times, symlinks, hard links, extended attributes, sparse files); incremental backups
// skip files unchanged since the parent snapshot. Restore verifies every chunk and never writes
// outside its target.
//
// It builds on backup/engine/repo; the node agent, the movers and storkctl call it.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package archive
