package restore

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

func TestTransform(t *testing.T) {
	value := func(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }
	op := func(o, path string, v *apiextensionsv1.JSON) storkv1.JSONPatchOperation {
		return storkv1.JSONPatchOperation{Op: o, Path: path, Value: v}
	}
	for _, tc := range []struct {
		name       string
		transforms []storkv1.ResourceTransform
		replicas   int64  // wanted afterwards
		err        string // wanted error, or ""
	}{
		{"none", nil, 3, ""},
		{"other kind", []storkv1.ResourceTransform{{Kind: "StatefulSet", Patch: []storkv1.JSONPatchOperation{op("replace", "/spec/replicas", value("0"))}}}, 3, ""},
		{"other name", []storkv1.ResourceTransform{{Kind: "Deployment", Names: []string{"web"}, Patch: []storkv1.JSONPatchOperation{op("replace", "/spec/replicas", value("0"))}}}, 3, ""},
		{"scale to zero", []storkv1.ResourceTransform{{Kind: "Deployment", Names: []string{"db"}, Patch: []storkv1.JSONPatchOperation{op("replace", "/spec/replicas", value("0"))}}}, 0, ""},
		{"in order", []storkv1.ResourceTransform{
			{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{op("replace", "/spec/replicas", value("1"))}},
			{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{op("test", "/spec/replicas", value("1")), op("replace", "/spec/replicas", value("2"))}}}, 2, ""},
		{"failed test", []storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{op("test", "/spec/replicas", value("5"))}}}, 3,
			"spec.transforms[0] (Deployment): "},
		{"missing path", []storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{op("remove", "/spec/paused", nil)}}}, 3,
			"spec.transforms[0] (Deployment): "},
		{"renaming is refused", []storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{op("replace", "/metadata/name", value(`"x"`))}}}, 3,
			"a patch may not change a Deployment's apiVersion, kind, namespace or name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
				"metadata": map[string]any{"namespace": "shop", "name": "db"}, "spec": map[string]any{"replicas": int64(3)}}}
			err := transform(obj, tc.transforms)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			got, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "replicas")
			if n, ok := got.(int64); !ok || n != tc.replicas {
				t.Errorf("replicas %#v, want %d", got, tc.replicas)
			}
		})
	}
	for _, tc := range []struct {
		ts   []storkv1.ResourceTransform
		want string
	}{
		{[]storkv1.ResourceTransform{{Kind: "Deployment"}, {Kind: "Pod"}}, `spec.transforms[1].kind: "Pod" is not a kind backups hold`},
		{[]storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{op("remove", "/a", nil), op("add", "/b", nil)}}},
			"spec.transforms[0].patch[1].value is required with op add, replace or test, and only then"},
		{[]storkv1.ResourceTransform{{Kind: "Deployment", Patch: []storkv1.JSONPatchOperation{op("remove", "/a", value("1"))}}},
			"spec.transforms[0].patch[0].value is required with op add, replace or test, and only then"},
	} {
		if msg := checkTransforms(tc.ts); msg != tc.want {
			t.Errorf("checkTransforms: %q, want %q", msg, tc.want)
		}
	}
}
