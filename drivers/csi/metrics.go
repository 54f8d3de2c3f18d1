package csi

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics of the data movers, on the controller's /metrics.
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

func init() {
	metrics.Registry.MustRegister(moverPodsStarted, moverFailures, moverPodsRunning, moverWaiting)
}
