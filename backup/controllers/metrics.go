package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	"stork.dev/stork/internal/metrics"
)

// RegisterMetrics registers the Snapshot and Backup controllers' metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	return metrics.Register(reg, snapshotsFinished, snapshotDuration, snapshotBytes, hookRuns,
		backupsFinished, backupDuration, backupBytes, backupBytesSkipped, backupVolumeFailures)
}
