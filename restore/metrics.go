package restore

import (
	"github.com/prometheus/client_golang/prometheus"

	"stork.dev/stork/internal/metrics"
)

// RegisterMetrics registers the Restore controller's metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	return metrics.Register(reg, restoresFinished)
}
