// Package fake is an in-memory storage driver for unit tests of controllers and placement. It
// implements the core Driver and every capability, keeps all state in memory, and finishes each
// piece of work after a configurable number of calls so tests can see the InProgress states that
// real, asynchronous drivers report. Never use it in e2e tests or in a running Stork.
//
// Layer: drivers. May import: lib, api, engine, drivers.
package fake
