// Package deploy holds what is applied to a cluster to run Stork: the CustomResourceDefinitions
// generated from api/ by `make generate` (crds/), and, as later parts land, RBAC, the controller
// and agent manifests and the scheduler configuration. The Go side only embeds those files, so
// that tests, the demo and storkctl install exactly what users apply with kubectl.
//
// It imports nothing of Stork's.
//
// Layer: api. May import: lib, api. No controller-runtime or client-go.
package deploy
