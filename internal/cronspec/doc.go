// Package cronspec reads the cron expressions and time zones of Stork's scheduled kinds
// (SnapshotSchedule, RestoreDrill) with robfig/cron/v3, so that both accept the same forms and
// say the same thing about a bad one.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package cronspec
