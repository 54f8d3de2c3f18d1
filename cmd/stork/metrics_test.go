package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// storkMetrics gathers the names of Stork's metrics in g.
func storkMetrics(t *testing.T, g prometheus.Gatherer) map[string]bool {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "stork_") {
			got[mf.GetName()] = true
		}
	}
	return got
}

func TestRegisterMetrics(t *testing.T) {
	// Importing every package of the controller registers nothing: no init() registration.
	if got := storkMetrics(t, crmetrics.Registry); len(got) > 0 {
		t.Fatalf("controller-runtime's registry holds Stork metrics before registerMetrics: %v", got)
	}
	reg := prometheus.NewRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	got := storkMetrics(t, reg)
	// Metrics without labels are gathered at once; one per package.
	for _, name := range []string{
		"stork_backup_bytes_total", "stork_snapshot_bytes_total", "stork_location_prune_deleted_bytes_total",
		"stork_csi_mover_pods_running",
	} {
		if !got[name] {
			t.Errorf("%s not registered; registered: %v", name, got)
		}
	}
	if err := registerMetrics(reg); err == nil || !strings.Contains(err.Error(), "stork_") {
		t.Fatalf("registering twice: %v, want an error naming the metric", err)
	}
}
