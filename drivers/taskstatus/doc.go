// Package taskstatus writes the status of VolumeTasks for the processes that do them: the local
// driver's node agents and the data mover pods. Progress is patched at most once a second, and
// the final result once, so that a task's status always says how far it got and how it ended.
//
// Layer: drivers. May import: lib, api, engine, drivers.
package taskstatus
