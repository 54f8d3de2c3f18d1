// Package resourcestest has helpers for tests of Kubernetes objects as the backup engine sees
// them: typed objects converted to unstructured ones as the API server returns them, and paths
// into them.
//
// Layer: testkit. May import: lib, api, engine, drivers, kit, controllers, testkit.
package resourcestest
