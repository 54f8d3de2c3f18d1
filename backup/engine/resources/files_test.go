package resources

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"stork.dev/stork/backup/engine/resources/resourcestest"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func storedObjects(t *testing.T) []*unstructured.Unstructured {
	objs := []*unstructured.Unstructured{
		resourcestest.Unstructured(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}),
		resourcestest.Unstructured(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "settings"}, Data: map[string]string{"k": "v"}}),
		resourcestest.Unstructured(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "creds"}, Data: map[string][]byte{"p": []byte("s")}}),
		resourcestest.Unstructured(t, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"}, Spec: appsv1.DeploymentSpec{Template: resourcestest.PodTemplate("")}}),
	}
	for _, o := range objs {
		Strip(o)
	}
	return objs
}

func TestWriteDirParseRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "objects")
	objs := storedObjects(t)
	if err := WriteDir(dir, objs); err != nil {
		t.Fatal(err)
	}

	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if p != dir && info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), want)
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConfigMap/settings.json", "Deployment/web.json", "Namespace/app.json", "Secret/creds.json"}
	if !slices.Equal(files, want) {
		t.Fatalf("files = %v, want %v", files, want)
	}

	for _, o := range objs {
		p := filepath.Join(dir, filepath.FromSlash(FileName(o)))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), "{\n  \"") {
			t.Errorf("%s is not indented JSON: %.40q", p, data)
		}
		got, err := Parse(p, data)
		if err != nil {
			t.Fatalf("Parse(%s): %v", p, err)
		}
		if !reflect.DeepEqual(got.Object, o.Object) {
			t.Errorf("Parse(%s) =\n  %v\nwant\n  %v", p, got.Object, o.Object)
		}
	}
}

func TestWriteDirRejects(t *testing.T) {
	cm := func(ns, name string) *unstructured.Unstructured {
		return resourcestest.Unstructured(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	}
	tests := []struct {
		name string
		objs []*unstructured.Unstructured
		want string
	}{
		{"same path twice", []*unstructured.Unstructured{cm("a", "x"), cm("b", "x")}, "ConfigMap b/x: another object was already written to ConfigMap/x.json"},
		{"name leaving the directory", []*unstructured.Unstructured{cm("a", "..")}, `name ".." cannot be a file name`},
		{"name with a slash", []*unstructured.Unstructured{cm("a", "x/y")}, `name "x/y" cannot be a file name`},
		{"unknown kind", []*unstructured.Unstructured{resourcestest.Unstructured(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"}})}, `writing Pod a/p: kind v1 "Pod" is not one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteDir(t.TempDir(), tt.objs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteDir: %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	const cm = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"app","name":"settings"}}`
	tests := []struct {
		name, path, data, want string
	}{
		{"kind other than the path's", "Secret/settings.json", cm, "holds ConfigMap app/settings, which belongs at ConfigMap/settings.json"},
		{"name other than the path's", "ConfigMap/other.json", cm, "holds ConfigMap app/settings"},
		{"no .json", "ConfigMap/settings", cm, "holds ConfigMap app/settings"},
		{"no kind directory", "settings.json", cm, "holds ConfigMap app/settings"},
		{"unknown kind", "Pod/p.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"app","name":"p"}}`, `kind v1 "Pod" is not one Stork restores`},
		{"RBAC kind", "Role/r.json", `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"namespace":"app","name":"r"}}`, `"Role" is not one Stork restores`},
		{"known kind, other version", "Deployment/web.json", `{"apiVersion":"apps/v1beta1","kind":"Deployment","metadata":{"namespace":"app","name":"web"}}`, `kind apps/v1beta1 "Deployment" is not one`},
		{"namespaced without namespace", "ConfigMap/settings.json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"}}`, "has no metadata.namespace"},
		{"namespace with namespace", "Namespace/app.json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"namespace":"x","name":"app"}}`, "is cluster-scoped"},
		{"no name", "ConfigMap/.json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"app"}}`, "belongs at"},
		{"not JSON", "ConfigMap/settings.json", `{"apiVersion":`, "decoding"},
		{"no kind", "ConfigMap/settings.json", `{"apiVersion":"v1","metadata":{"name":"settings"}}`, "decoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := Parse("backup/"+tt.path, []byte(tt.data))
			if err == nil {
				t.Fatalf("Parse = %v, want an error", obj)
			}
			if !strings.Contains(err.Error(), "backup/"+tt.path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v, want the path and %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsOSPaths(t *testing.T) {
	data := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"app","name":"settings"}}`)
	for _, p := range []string{"ConfigMap/settings.json", filepath.Join("tmp", "b", "ConfigMap", "settings.json")} {
		if _, err := Parse(p, data); err != nil {
			t.Errorf("Parse(%s): %v", p, err)
		}
	}
}
