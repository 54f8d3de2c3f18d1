// Package crashpoint lets the fault campaign (`make faults`, e2e TestFaults) kill a Stork process
// at a named point of its work, as `kill -9` would at that instant: with STORK_CRASH_AT=NAME in
// its environment, the process sends itself SIGKILL when it reaches point NAME. No deferred
// function, no cleanup and no final status write runs. Outside the campaign the variable is
// unset and a point costs one environment lookup.
//
// Why not a signal from outside: the campaign must hit the same instant every run (after the
// record is written but before the status says so, for example), which polling from another
// process cannot promise. Why not a failpoint library (gofail): it rewrites the source at build
// time, and the campaign needs the images and binaries users run, not a special build.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package crashpoint
