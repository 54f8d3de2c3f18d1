package locations

import (
	"github.com/prometheus/client_golang/prometheus"

	"stork.dev/stork/internal/metrics"
)

// RegisterMetrics registers the BackupLocation controller's (prune) metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	return metrics.Register(reg, prunes, pruneDeletedBytes)
}
