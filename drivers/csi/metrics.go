package csi

import (
	"github.com/prometheus/client_golang/prometheus"

	"stork.dev/stork/internal/metrics"
)

// Metrics of the data movers, on the controller's /metrics (RegisterMetrics).
var (
	moverPodsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_csi_mover_pods_started_total", Help: "Data mover pods started, by verb (backup, restore).",
	}, []string{"verb"})
	moverFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_csi_mover_failures_total", Help: "Mover work the csi driver failed itself, by reason (MoverFailed, MoverNotStarted, …).",
	}, []string{"reason"})
	moverPodsRunning = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "stork_csi_mover_pods_running", Help: "Data mover pods not finished, as last counted for the concurrency limits.",
	})
	moverWaiting = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_csi_mover_waits_total", Help: "Times mover work had to wait for a pod to be placed, by reason (WaitingForMoverSlot, NoHealthyStorageNode, WaitingForVolume).",
	}, []string{"reason"})
)

// RegisterMetrics registers the csi driver's mover metrics with reg (the stork controller's
// registry: the movers themselves expose none).
func RegisterMetrics(reg prometheus.Registerer) error {
	return metrics.Register(reg, moverPodsStarted, moverFailures, moverPodsRunning, moverWaiting)
}
