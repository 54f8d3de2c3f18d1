package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers every collector with reg; the error names each that failed (a metric
// registered twice, or one of the same name with other labels).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("registering %s: %w", describe(c), err))
		}
	}
	return errors.Join(errs...)
}

// describe names a collector by its first metric.
func describe(c prometheus.Collector) string {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	name := "a collector"
	for d := range ch {
		if name == "a collector" {
			name = d.String()
		}
	}
	return name
}
