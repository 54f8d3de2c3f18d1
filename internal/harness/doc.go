// Package harness runs real Kubernetes control planes and a real MinIO server on one machine,
// with no Docker and no kubelet, for Stork's integration and e2e tests and for the demo.
//
// The binaries (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubectl, minio)
// are built from pinned Go modules by hack/testbin.sh into a cache outside the checkout; the
// harness finds them through $STORK_TESTBIN. A cluster is etcd and kube-apiserver started by
// controller-runtime's envtest, plus kube-controller-manager and kube-scheduler as plain
// processes, with Stork's CRDs installed and simulated Nodes kept Ready by a heartbeat. Every file
// of an Env lives under one root directory, and every process names a path under it on its
// command line: Close stops everything and proves nothing is left, and a watchdog process kills
// what is left if the test binary dies first.
//
// StartCSI adds a real CSI control plane ($STORK_CSI_TESTBIN, `hack/testbin.sh csi`): the
// snapshot CRDs, snapshot-controller, csi-snapshotter and csi-provisioner as processes, driving
// the test plugin of csiplugin (volumes are directories) over a unix socket, with the CSIDriver,
// CSINodes and classes a driver's installation and the kubelets would make. With no kubelet,
// RunPods reports bound pods Running without running anything, and MoverPods runs Stork's data
// mover pods for real: the pod's command as the pod's service account, its volumes mapped to
// local directories.
//
// It lives outside e2e/ so that the tests of api/ (CRD validation on a real API server) use it
// too; nothing but tests and the demo may import it.
//
// Layer: testkit. May import: lib, api, engine, drivers, kit, controllers, testkit.
package harness
