// Package placement puts pods where their data is: a kube-scheduler extender (filter and
// prioritize by where each volume's replicas live — node, rack, zone, region — and by storage
// health), the health monitor that moves pods off nodes whose storage failed, and the admission
// webhook that sends pods with Stork-managed volumes to the extender.
//
// It may import api/, drivers/ and Kubernetes libraries. It keeps all state in informers so
// that scheduling requests never wait on the API server or a driver.
package placement
