package restore

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// podSpecPaths are where a restored object of a kind keeps its pod's labels and spec.
var podSpecPaths = map[string]struct{ labels, spec []string }{
	"Pod":         {[]string{"metadata", "labels"}, []string{"spec"}},
	"Deployment":  {[]string{"spec", "template", "metadata", "labels"}, []string{"spec", "template", "spec"}},
	"StatefulSet": {[]string{"spec", "template", "metadata", "labels"}, []string{"spec", "template", "spec"}},
	"DaemonSet":   {[]string{"spec", "template", "metadata", "labels"}, []string{"spec", "template", "spec"}},
	"ReplicaSet":  {[]string{"spec", "template", "metadata", "labels"}, []string{"spec", "template", "spec"}},
	"Job":         {[]string{"spec", "template", "metadata", "labels"}, []string{"spec", "template", "spec"}},
	"CronJob": {[]string{"spec", "jobTemplate", "spec", "template", "metadata", "labels"},
		[]string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// checkInitHooks says what is wrong with a Restore's spec.initHooks ("" if nothing): a selector
// that does not parse. Checked when the restore is planned.
func checkInitHooks(hooks []storkv1.InitHook) string {
	for i, h := range hooks {
		if _, err := metav1.LabelSelectorAsSelector(&h.PodSelector); err != nil {
			return fmt.Sprintf("spec.initHooks[%d].podSelector: %v", i, err)
		}
	}
	return ""
}

// addInitContainers puts the init containers of the hooks that select obj's pod (by its labels,
// or its template's) in front of the pod's own, skipping names the pod already uses. It returns
// the names of the hooks applied.
func addInitContainers(obj *unstructured.Unstructured, hooks []storkv1.InitHook) ([]string, error) {
	paths, ok := podSpecPaths[obj.GetKind()]
	if !ok || len(hooks) == 0 {
		return nil, nil
	}
	podLabels, _, err := unstructured.NestedStringMap(obj.Object, paths.labels...)
	if err != nil {
		return nil, fmt.Errorf("reading the pod labels of %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	initPath := append(append([]string{}, paths.spec...), "initContainers")
	existing, _, err := unstructured.NestedSlice(obj.Object, initPath...)
	if err != nil {
		return nil, fmt.Errorf("reading the init containers of %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	names := map[string]bool{}
	for _, c := range existing {
		if m, ok := c.(map[string]any); ok {
			names[fmt.Sprint(m["name"])] = true
		}
	}
	var added []any
	var applied []string
	for i, h := range hooks {
		sel, err := metav1.LabelSelectorAsSelector(&h.PodSelector)
		if err != nil {
			return nil, fmt.Errorf("spec.initHooks[%d].podSelector: %w", i, err)
		}
		if !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		for _, c := range h.InitContainers {
			if names[c.Name] {
				continue
			}
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&c)
			if err != nil {
				return nil, fmt.Errorf("spec.initHooks[%d]: container %s: %w", i, c.Name, err)
			}
			names[c.Name] = true
			added = append(added, u)
		}
		applied = append(applied, h.Name)
	}
	if len(added) == 0 {
		return applied, nil
	}
	if err := unstructured.SetNestedSlice(obj.Object, append(added, existing...), initPath...); err != nil {
		return nil, fmt.Errorf("adding init containers to %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return applied, nil
}
