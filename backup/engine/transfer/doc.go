// Package transfer is the data path between a directory tree and a backup location's repository,
// shared by the two processes that move volume data: the local driver's node agent (snapshots on
// its storage root) and the data mover pods of drivers without node agents (a volume mounted into
// the pod). It opens a repository from an access Secret's content, backs a tree up as a child of
// the newest backup of the same claim, and restores a backup into a directory, with failures
// carrying a CamelCase reason for status fields.
//
// Layer: engine. May import: lib, api, engine. No controller-runtime or client-go.
package transfer
