package restore

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

func TestAddInitContainers(t *testing.T) {
	hooks := []storkv1.InitHook{
		{Name: "recover", PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			InitContainers: []corev1.Container{{Name: "recover", Image: "db", Command: []string{"db-recover", "/data"}}}},
		{Name: "everyone", InitContainers: []corev1.Container{{Name: "wait", Image: "busybox"}}},
	}
	withTemplate := func(kind string, lbls map[string]string, inits ...string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": kind, "metadata": map[string]any{"name": "x", "namespace": "ns"}}}
		var cs []any
		for _, n := range inits {
			cs = append(cs, map[string]any{"name": n, "image": "own"})
		}
		paths, ok := podSpecPaths[kind]
		if !ok {
			return u
		}
		l := map[string]any{}
		for k, v := range lbls {
			l[k] = v
		}
		unstructured.SetNestedMap(u.Object, l, paths.labels...)
		if cs != nil {
			unstructured.SetNestedSlice(u.Object, cs, append(paths.spec, "initContainers")...)
		}
		return u
	}
	initNames := func(u *unstructured.Unstructured) []string {
		cs, _, _ := unstructured.NestedSlice(u.Object, append(podSpecPaths[u.GetKind()].spec, "initContainers")...)
		var out []string
		for _, c := range cs {
			out = append(out, c.(map[string]any)["name"].(string))
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		obj       *unstructured.Unstructured
		wantInits []string
		wantHooks []string
	}{
		{"deployment selected by both, before its own", withTemplate("Deployment", map[string]string{"app": "db"}, "own"), []string{"recover", "wait", "own"}, []string{"recover", "everyone"}},
		{"statefulset of another app", withTemplate("StatefulSet", map[string]string{"app": "web"}), []string{"wait"}, []string{"everyone"}},
		{"a pod", withTemplate("Pod", map[string]string{"app": "db"}), []string{"recover", "wait"}, []string{"recover", "everyone"}},
		{"a cronjob's template", withTemplate("CronJob", map[string]string{"app": "db"}), []string{"recover", "wait"}, []string{"recover", "everyone"}},
		{"a name already used is not added twice", withTemplate("Deployment", map[string]string{"app": "db"}, "recover"), []string{"wait", "recover"}, []string{"recover", "everyone"}},
		{"not a workload", withTemplate("ConfigMap", nil), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied, err := addInitContainers(tc.obj, hooks)
			if err != nil {
				t.Fatal(err)
			}
			if tc.obj.GetKind() != "ConfigMap" {
				if got := initNames(tc.obj); !reflect.DeepEqual(got, tc.wantInits) {
					t.Errorf("init containers %v, want %v", got, tc.wantInits)
				}
			}
			if !reflect.DeepEqual(applied, tc.wantHooks) {
				t.Errorf("hooks applied %v, want %v", applied, tc.wantHooks)
			}
		})
	}
	if msg := checkInitHooks([]storkv1.InitHook{{Name: "bad", PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Sometimes"}}}}}); msg == "" {
		t.Error("a selector with an unknown operator passed checkInitHooks")
	}
}
