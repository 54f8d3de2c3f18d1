// Package locator is how the controllers reach a BackupLocation's repository: Resolve reads the
// location's credentials and encryption key from its Secrets (a missing or incomplete Secret
// is an *Unavailable error naming the field); Cache keeps one open repository per location so
// that reconciles do not reread a whole index; EnsureAccessSecret and DeleteAccessSecret hand
// one task's access to agents and movers in Stork's namespace, so that they never read the
// application's Secrets.
//
// Layer: kit. May import: lib, api, engine, drivers, kit.
package locator
