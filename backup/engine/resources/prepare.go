package resources

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Mapping says how a restore maps objects into the target cluster.
type Mapping struct {
	Namespaces     map[string]string // source namespace → target; unmapped: same name
	Claims         map[string]string // source PVC name → target name
	StorageClasses map[string]string // source class → target class
	// IncludeKinds and ExcludeKinds filter by Kind name (e.g. "ConfigMap"); an empty
	// IncludeKinds includes all kinds. The Namespace is never filtered out.
	IncludeKinds, ExcludeKinds []string
}

// legacyStorageClassAnnotation predates spec.storageClassName and is still honoured by
// provisioners, so it is mapped like the field.
const legacyStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"

// Prepare returns deep copies of objs mapped for the target and sorted in restore order (then by
// name); objs are not modified.
//
//   - Namespaces: a Namespace's name and every object's metadata.namespace.
//   - Claims: a PVC's name, and the claims pod templates mount
//     (volumes[].persistentVolumeClaim.claimName of StatefulSets, Deployments, DaemonSets, Jobs
//     and CronJobs' job templates).
//   - StorageClasses: a PVC's spec.storageClassName and a StatefulSet's
//     volumeClaimTemplates[].spec.storageClassName, and the legacy annotation
//     volume.beta.kubernetes.io/storage-class on both.
//   - IncludeKinds/ExcludeKinds filter kinds, except the Namespace: a mapped namespace must
//     exist for anything to be restored into it.
//
// An unknown kind name in IncludeKinds or ExcludeKinds, or an object of a kind not in Kinds, is
// an error.
func Prepare(objs []*unstructured.Unstructured, m Mapping) ([]*unstructured.Unstructured, error) {
	include, err := kindSet("spec.includeKinds", m.IncludeKinds)
	if err != nil {
		return nil, err
	}
	exclude, err := kindSet("spec.excludeKinds", m.ExcludeKinds)
	if err != nil {
		return nil, err
	}

	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		k, ok := KindOf(o)
		if !ok {
			return nil, fmt.Errorf("%s: kind %s %q is not one Stork restores (valid kinds: %s)",
				Describe(o), o.GetAPIVersion(), o.GetKind(), kindNames())
		}
		if k.Namespaced && ((len(include) > 0 && !include[k.Kind]) || exclude[k.Kind]) {
			continue
		}
		obj := o.DeepCopy()
		mapNamespace(obj, m.Namespaces)
		mapClaims(obj, m.Claims)
		mapStorageClasses(obj, m.StorageClasses)
		out = append(out, obj)
	}
	Sort(out)
	return out, nil
}

// kindSet checks the kind names of the Restore field named field and returns them as a set.
func kindSet(field string, names []string) (map[string]bool, error) {
	set := make(map[string]bool, len(names))
	var unknown []string
	for _, n := range names {
		if _, ok := KindNamed(n); !ok {
			unknown = append(unknown, fmt.Sprintf("%q", n))
			continue
		}
		set[n] = true
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s: unknown kind %s (valid kinds: %s)", field, strings.Join(unknown, ", "), kindNames())
	}
	return set, nil
}

func mapNamespace(obj *unstructured.Unstructured, namespaces map[string]string) {
	if obj.GetKind() == "Namespace" {
		to, ok := namespaces[obj.GetName()]
		if !ok {
			return
		}
		obj.SetName(to)
		// The API server sets this label to the name on create; keep the copy consistent
		// with what will be created.
		if l := obj.GetLabels(); l["kubernetes.io/metadata.name"] != "" {
			l["kubernetes.io/metadata.name"] = to
			obj.SetLabels(l)
		}
		return
	}
	if to, ok := namespaces[obj.GetNamespace()]; ok {
		obj.SetNamespace(to)
	}
}

func mapClaims(obj *unstructured.Unstructured, claims map[string]string) {
	if len(claims) == 0 {
		return
	}
	if obj.GetKind() == "PersistentVolumeClaim" {
		if to, ok := claims[obj.GetName()]; ok {
			obj.SetName(to)
		}
		return
	}
	p := podSpecPath(obj.GetKind())
	if p == nil {
		return
	}
	volumes, found, err := unstructured.NestedSlice(obj.Object, append(p, "volumes")...)
	if !found || err != nil {
		return
	}
	for _, v := range volumes {
		vm, _ := v.(map[string]any)
		from, found, _ := unstructured.NestedString(vm, "persistentVolumeClaim", "claimName")
		if to, ok := claims[from]; found && ok {
			_ = unstructured.SetNestedField(vm, to, "persistentVolumeClaim", "claimName")
		}
	}
	_ = unstructured.SetNestedSlice(obj.Object, volumes, append(p, "volumes")...)
}

func mapStorageClasses(obj *unstructured.Unstructured, classes map[string]string) {
	if len(classes) == 0 {
		return
	}
	switch obj.GetKind() {
	case "PersistentVolumeClaim":
		mapClaimClass(obj.Object, classes)
	case "StatefulSet":
		templates, found, err := unstructured.NestedSlice(obj.Object, "spec", "volumeClaimTemplates")
		if !found || err != nil {
			return
		}
		for _, t := range templates {
			if tm, ok := t.(map[string]any); ok {
				mapClaimClass(tm, classes)
			}
		}
		_ = unstructured.SetNestedSlice(obj.Object, templates, "spec", "volumeClaimTemplates")
	}
}

// mapClaimClass maps the storage class of one claim (a PVC or a volumeClaimTemplate, given as
// its object map), in spec.storageClassName and in the legacy annotation.
func mapClaimClass(claim map[string]any, classes map[string]string) {
	if from, found, _ := unstructured.NestedString(claim, "spec", "storageClassName"); found {
		if to, ok := classes[from]; ok {
			_ = unstructured.SetNestedField(claim, to, "spec", "storageClassName")
		}
	}
	if from, found, _ := unstructured.NestedString(claim, "metadata", "annotations", legacyStorageClassAnnotation); found {
		if to, ok := classes[from]; ok {
			_ = unstructured.SetNestedField(claim, to, "metadata", "annotations", legacyStorageClassAnnotation)
		}
	}
}
