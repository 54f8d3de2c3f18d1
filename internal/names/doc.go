// Package names makes valid Kubernetes names and label values out of free text (cluster IDs,
// snapshot IDs), for the labels Stork puts on the objects it makes.
//
// Layer: lib. May import: lib. No controller-runtime or client-go.
package names
