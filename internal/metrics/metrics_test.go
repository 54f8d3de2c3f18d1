package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "a_total", Help: "a, again"})
	tests := []struct {
		name    string
		first   []prometheus.Collector
		then    []prometheus.Collector
		wantErr string
	}{
		{"fresh registry", nil, []prometheus.Collector{a, b}, ""},
		{"twice", []prometheus.Collector{a}, []prometheus.Collector{a, b}, "a_total"},
		{"same name, other metric", []prometheus.Collector{a}, []prometheus.Collector{clash}, "a_total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if err := Register(reg, tt.first...); err != nil {
				t.Fatal(err)
			}
			err := Register(reg, tt.then...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Register: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Register error %v, want one naming %s", err, tt.wantErr)
			}
			// What registered is gathered: b registers even when a fails.
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, mf := range mfs {
				got[mf.GetName()] = true
			}
			if len(tt.then) == 2 && !got["b_total"] {
				t.Fatalf("b_total not registered: %v", got)
			}
		})
	}
}
