// Package backup is the home of backups; it holds no code. Its subpackages are three layers
// (docs/design.md):
//
//   - engine/: the backup engine, storage-agnostic and free of Kubernetes client libraries:
//     object stores, the repository format, trees, retention, records, one transfer;
//   - locator and hooks: what the controllers share to reach a BackupLocation's repository and
//     to run hooks in pods;
//   - controllers/: the Snapshot, Backup and sync reconcilers, and locations/, the
//     BackupLocation reconciler with its maintenance.
//
// The agent, the movers and storkctl import only engine packages.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package backup
