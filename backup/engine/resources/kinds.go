package resources

import (
	"cmp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kind is one kind of object Stork backs up and restores.
type Kind struct {
	Group, Version, Resource, Kind string
	Namespaced                     bool
}

// GroupVersionKind returns the kind's group, version and kind.
func (k Kind) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
}

// Kinds lists the kinds Stork backs up and restores, in restore order (dependency order). The
// Namespace is cluster-scoped: only the backed-up namespace itself is stored. See the package
// comment for why the list is fixed. It is never modified.
var Kinds = []Kind{
	{Group: "", Version: "v1", Resource: "namespaces", Kind: "Namespace", Namespaced: false},
	{Group: "", Version: "v1", Resource: "serviceaccounts", Kind: "ServiceAccount", Namespaced: true},
	{Group: "", Version: "v1", Resource: "configmaps", Kind: "ConfigMap", Namespaced: true},
	{Group: "", Version: "v1", Resource: "secrets", Kind: "Secret", Namespaced: true},
	{Group: "", Version: "v1", Resource: "persistentvolumeclaims", Kind: "PersistentVolumeClaim", Namespaced: true},
	{Group: "", Version: "v1", Resource: "services", Kind: "Service", Namespaced: true},
	{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies", Kind: "NetworkPolicy", Namespaced: true},
	{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets", Kind: "PodDisruptionBudget", Namespaced: true},
	{Group: "apps", Version: "v1", Resource: "statefulsets", Kind: "StatefulSet", Namespaced: true},
	{Group: "apps", Version: "v1", Resource: "deployments", Kind: "Deployment", Namespaced: true},
	{Group: "apps", Version: "v1", Resource: "daemonsets", Kind: "DaemonSet", Namespaced: true},
	{Group: "batch", Version: "v1", Resource: "jobs", Kind: "Job", Namespaced: true},
	{Group: "batch", Version: "v1", Resource: "cronjobs", Kind: "CronJob", Namespaced: true},
	{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers", Kind: "HorizontalPodAutoscaler", Namespaced: true},
	{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses", Kind: "Ingress", Namespaced: true},
}

// KindNamed returns the entry of Kinds with that Kind name (case-sensitive, e.g. "ConfigMap").
func KindNamed(kind string) (Kind, bool) {
	i := kindIndex(kind)
	if i < 0 {
		return Kind{}, false
	}
	return Kinds[i], true
}

// kindIndex is the position of kind in Kinds (its restore order), or -1.
func kindIndex(kind string) int {
	return slices.IndexFunc(Kinds, func(k Kind) bool { return k.Kind == kind })
}

// KindOf returns the Kind of obj, checking its apiVersion too: a Deployment of another group or
// version is not one Stork knows how to restore.
func KindOf(obj *unstructured.Unstructured) (Kind, bool) {
	k, ok := KindNamed(obj.GetKind())
	if !ok || obj.GroupVersionKind() != k.GroupVersionKind() {
		return Kind{}, false
	}
	return k, true
}

// kindNames is the list of valid kind names, for error messages.
func kindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = k.Kind
	}
	return strings.Join(names, ", ")
}

// Describe names an object in messages: "ConfigMap app/settings", "Namespace app".
func Describe(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + " " + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + " " + obj.GetName()
}

// Sort sorts in restore order, then by name (then namespace, so that the order is total).
// Kinds not in Kinds come last; Collect (backup/controllers) and Prepare never return any.
func Sort(objs []*unstructured.Unstructured) {
	rank := func(o *unstructured.Unstructured) int {
		if i := kindIndex(o.GetKind()); i >= 0 {
			return i
		}
		return len(Kinds)
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(
			cmp.Compare(rank(a), rank(b)),
			cmp.Compare(a.GetName(), b.GetName()),
			cmp.Compare(a.GetNamespace(), b.GetNamespace()),
		)
	})
}

// podSpecPath is where a kind keeps its pod template's spec, or nil for kinds without one.
func podSpecPath(kind string) []string {
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		return []string{"spec", "template", "spec"}
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	}
	return nil
}
