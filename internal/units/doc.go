// Package units writes quantities for people: byte counts in binary units, as storkctl prints
// them and as BackupLocations report their prunes.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package units
