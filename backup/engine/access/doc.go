// Package access describes how to reach a BackupLocation's repository without Kubernetes: the
// store configuration and key (Access), and the data of the access Secret the controller hands
// to agents and movers for one task (SecretData, ParseSecret). Reading a location's own Secrets
// is the controller's business (backup/locator); agents only ever parse an access Secret.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package access
