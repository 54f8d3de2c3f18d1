package placement

import (
	"github.com/prometheus/client_golang/prometheus"

	"stork.dev/stork/internal/metrics"
)

// RegisterMetrics registers the extender's and the health monitor's metrics with reg (the
// stork controller's registry).
func RegisterMetrics(reg prometheus.Registerer) error {
	return metrics.Register(reg, extenderRequests, extenderLatency, monitorEvictions, monitorDown, monitorPaused)
}
