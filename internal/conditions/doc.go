// Package conditions holds the status helpers every Stork controller uses: setting a
// metav1.Condition from a verdict, and emitting an Event when a recorder is configured.
//
// Layer: kit. May import: lib, api, engine, drivers, kit.
package conditions
