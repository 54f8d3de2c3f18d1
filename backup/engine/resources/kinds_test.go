package resources

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

func TestKinds(t *testing.T) {
	seen := map[string]bool{}
	for i, k := range Kinds {
		if seen[k.Kind] {
			t.Errorf("%s listed twice", k.Kind)
		}
		seen[k.Kind] = true
		if !clientgoscheme.Scheme.Recognizes(k.GroupVersionKind()) {
			t.Errorf("%v is not a client-go kind", k.GroupVersionKind())
		}
		if plural, _ := meta.UnsafeGuessKindToResource(k.GroupVersionKind()); plural.Resource != k.Resource {
			t.Errorf("%s: resource %q, want %q", k.Kind, k.Resource, plural.Resource)
		}
		if k.Namespaced != (i > 0) {
			t.Errorf("%s: namespaced %t; only the Namespace, first, is cluster-scoped", k.Kind, k.Namespaced)
		}
	}
	// Least privilege: nothing that would need escalate/bind rights or rights on pods.
	for _, k := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Pod", "ReplicaSet", "Endpoints"} {
		if seen[k] {
			t.Errorf("%s must not be among Kinds", k)
		}
	}
}

func TestKindNamed(t *testing.T) {
	tests := []struct {
		name      string
		ok        bool
		group     string
		version   string
		namespace bool
	}{
		{"Namespace", true, "", "v1", false},
		{"ConfigMap", true, "", "v1", true},
		{"NetworkPolicy", true, "networking.k8s.io", "v1", true},
		{"PodDisruptionBudget", true, "policy", "v1", true},
		{"CronJob", true, "batch", "v1", true},
		{"HorizontalPodAutoscaler", true, "autoscaling", "v2", true},
		{"configmap", false, "", "", false},
		{"RoleBinding", false, "", "", false},
		{"", false, "", "", false},
	}
	for _, tt := range tests {
		k, ok := KindNamed(tt.name)
		if ok != tt.ok || k.Group != tt.group || k.Version != tt.version || k.Namespaced != tt.namespace || (ok && k.Kind != tt.name) {
			t.Errorf("KindNamed(%q) = %+v, %t", tt.name, k, ok)
		}
	}
}

func TestRestoreOrder(t *testing.T) {
	// What pods refer to comes before the workloads, and what refers to workloads after them.
	before := [][2]string{
		{"Namespace", "ServiceAccount"}, {"ConfigMap", "Deployment"}, {"Secret", "StatefulSet"},
		{"PersistentVolumeClaim", "StatefulSet"}, {"ServiceAccount", "DaemonSet"}, {"Service", "StatefulSet"},
		{"Deployment", "HorizontalPodAutoscaler"}, {"Service", "Ingress"}, {"Job", "CronJob"},
	}
	for _, b := range before {
		if kindIndex(b[0]) >= kindIndex(b[1]) {
			t.Errorf("%s restored after %s", b[0], b[1])
		}
	}
}
