// Package metrics registers Prometheus collectors explicitly. Stork's packages define their
// collectors and export a RegisterMetrics(reg) that calls Register; cmd/stork registers the
// controller's with controller-runtime's registry, so that importing a package (as the agent
// and the movers import drivers) never adds metrics to a process's endpoint.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package metrics
