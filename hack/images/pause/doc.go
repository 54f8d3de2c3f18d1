// Command pause is the process of a pod sandbox for kubelets that cannot pull
// registry.k8s.io/pause (no registry is reachable where Stork is tested): it holds the pod's
// namespaces by doing nothing, reaps the zombies that land on it as PID 1, and exits on
// SIGINT or SIGTERM, as the upstream pause does. hack/images puts it in the image
// stork-pause, which containerd's sandbox_image names.
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package main
