// Package webhook is Stork's mutating admission webhook for Pods: a pod that mounts a claim owned
// by one of Stork's drivers gets spec.schedulerName set to Stork's scheduler (the kube-scheduler
// profile that calls the placement extender), so that it lands where its data is.
//
// A pod is left alone when it opts out (annotation stork.dev/scheduler: skip), when someone chose
// a scheduler for it (any schedulerName other than "" and "default-scheduler"), when it is
// already bound to a node, and when none of its claims is owned by a driver. Claims that do not
// exist yet (a pod created before its claim) count as not owned: the pod is never failed for
// them. Generic ephemeral volumes are ignored. A pod sent to Stork carries the annotation
// stork.dev/scheduler-set naming the drivers that own its claims, so users see why.
//
// The webhook answers from the manager's cache (claims, volumes, storage classes) and fails a
// request only when the cache cannot be read. Its MutatingWebhookConfiguration
// (deploy/base/manifests/50-webhook.yaml) has failurePolicy Ignore: when Stork is down, slow or
// failing, pods are still created and go to the default scheduler, which works, only without
// storage awareness. A Stork outage never blocks pod creation.
//
// The webhook mutates the pod's JSON as the API server sent it, not a decoded and re-encoded
// Pod, so that fields newer than Stork's Kubernetes libraries are never dropped by the patch.
//
// Layer: controllers. May import: lib, api, engine, drivers, kit, controllers (same top-level directory).
package webhook
