package drill

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/metrics"
)

var (
	runsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stork_drill_runs_total", Help: "Restore drill runs that finished, by result (Passed, Failed).",
	}, []string{"result"})
	// lastPassed is 1 when a drill's last run passed, 0 when it failed: alert on == 0.
	lastPassed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stork_drill_last_run_passed", Help: "1 if the drill's last run restored and verified its backup, 0 if it failed.",
	}, []string{"namespace", "drill"})
	lastRTO = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stork_drill_last_rto_seconds", Help: "Recovery time the drill's last passed run measured.",
	}, []string{"namespace", "drill"})
	lastRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "stork_drill_last_run_timestamp_seconds", Help: "When the drill's last run finished (Unix time).",
	}, []string{"namespace", "drill"})
)

// RegisterMetrics registers the drill controller's metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) error {
	return metrics.Register(reg, runsTotal, lastPassed, lastRTO, lastRun)
}

// record exports a finished run.
func record(key types.NamespacedName, run *storkv1.DrillRun) {
	runsTotal.WithLabelValues(string(run.Result)).Inc()
	passed := 0.0
	if run.Result == storkv1.DrillPassed {
		passed = 1
		if run.RTO != nil {
			lastRTO.WithLabelValues(key.Namespace, key.Name).Set(run.RTO.Seconds())
		}
	}
	lastPassed.WithLabelValues(key.Namespace, key.Name).Set(passed)
	lastRun.WithLabelValues(key.Namespace, key.Name).Set(float64(run.CompletionTime.Unix()))
}

// forget drops a deleted drill's series.
func forget(key types.NamespacedName) {
	for _, g := range []*prometheus.GaugeVec{lastPassed, lastRTO, lastRun} {
		g.DeleteLabelValues(key.Namespace, key.Name)
	}
}
