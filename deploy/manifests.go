package deploy

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

//go:embed base/manifests/*.yaml
var manifestFiles embed.FS

// Manifests returns the objects of deploy/base/manifests (namespace, RBAC, the controller's
// Deployment and the agent's DaemonSet), in file order, for tests and the demo to apply.
func Manifests() ([]*unstructured.Unstructured, error) {
	names, err := fs.Glob(manifestFiles, "base/manifests/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, name := range names {
		data, err := manifestFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		for i, doc := range bytes.Split(data, []byte("\n---")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return nil, fmt.Errorf("decoding document %d of %s: %w", i+1, name, err)
			}
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// SchedulerConfig returns the stork scheduler's KubeSchedulerConfiguration, from the ConfigMap
// of base/manifests/60-scheduler.yaml, so that tests run kube-scheduler with what users deploy.
func SchedulerConfig() (string, error) {
	objs, err := Manifests()
	if err != nil {
		return "", err
	}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == "stork-scheduler-config" {
			cfg, ok, _ := unstructured.NestedString(o.Object, "data", "config.yaml")
			if ok {
				return cfg, nil
			}
		}
	}
	return "", fmt.Errorf("deploy/base/manifests has no ConfigMap stork-scheduler-config with config.yaml")
}
