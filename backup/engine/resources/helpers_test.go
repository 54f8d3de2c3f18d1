package resources

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// names lists objects as describe does, for comparing orders.
func names(objs []*unstructured.Unstructured) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = Describe(o)
	}
	return out
}
