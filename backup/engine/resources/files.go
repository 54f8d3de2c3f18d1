package resources

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FileName is where obj is stored in a backup tree: "<Kind>/<name>.json" (slash-separated).
func FileName(obj *unstructured.Unstructured) string {
	return obj.GetKind() + "/" + obj.GetName() + ".json"
}

// WriteDir stores objs under dir, one indented JSON object per file at dir/<Kind>/<name>.json.
// Directories are created 0700 and files 0600: the objects include Secrets.
func WriteDir(dir string, objs []*unstructured.Unstructured) error {
	written := make(map[string]bool, len(objs))
	for _, obj := range objs {
		name := FileName(obj)
		// Names come from the API server, but a path must never leave dir whatever is passed.
		if _, ok := KindOf(obj); !ok {
			return fmt.Errorf("writing %s: kind %s %q is not one Stork backs up (valid kinds: %s)",
				Describe(obj), obj.GetAPIVersion(), obj.GetKind(), kindNames())
		}
		if !validFileName(obj.GetName()) {
			return fmt.Errorf("writing %s: name %q cannot be a file name", Describe(obj), obj.GetName())
		}
		// One tree holds one namespace; two objects at one path would lose one of them.
		if written[name] {
			return fmt.Errorf("writing %s: another object was already written to %s", Describe(obj), name)
		}
		written[name] = true

		data, err := json.MarshalIndent(obj.Object, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding %s: %w", Describe(obj), err)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("writing %s: %w", Describe(obj), err)
		}
		if err := os.WriteFile(p, append(data, '\n'), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", Describe(obj), err)
		}
	}
	return nil
}

// validFileName accepts what can be a single path element. Kubernetes names (DNS subdomains or
// labels) always are; this guards against objects that did not come from an API server.
func validFileName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`)
}

// Parse decodes one stored file. filePath is the file's path in the backup tree (or any path ending
// in <Kind>/<name>.json); the object must be of that kind (one of Kinds, with its apiVersion)
// and name, so that a file cannot smuggle in another object than the tree says it holds.
func Parse(filePath string, data []byte) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("backup file %s: decoding: %w", filePath, err)
	}
	k, ok := KindOf(obj)
	if !ok {
		return nil, fmt.Errorf("backup file %s: kind %s %q is not one Stork restores (valid kinds: %s)",
			filePath, obj.GetAPIVersion(), obj.GetKind(), kindNames())
	}
	dir, file := path.Split(filepath.ToSlash(filePath))
	if want := obj.GetName() + ".json"; obj.GetName() == "" || file != want || path.Base(dir) != k.Kind {
		return nil, fmt.Errorf("backup file %s: holds %s, which belongs at %s", filePath, Describe(obj), FileName(obj))
	}
	// Restores map metadata.namespace; without one there is nowhere to restore the object to.
	if k.Namespaced && obj.GetNamespace() == "" {
		return nil, fmt.Errorf("backup file %s: %s has no metadata.namespace", filePath, Describe(obj))
	}
	if !k.Namespaced && obj.GetNamespace() != "" {
		return nil, fmt.Errorf("backup file %s: %s is cluster-scoped but has metadata.namespace %q",
			filePath, Describe(obj), obj.GetNamespace())
	}
	return obj, nil
}
