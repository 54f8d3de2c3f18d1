package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"

	"stork.dev/stork/deploy"
	"stork.dev/stork/internal/harness"
)

// key names an object as kubectl does: Kind/namespace/name.
func key(u *unstructured.Unstructured) string {
	return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// decode splits a multi-document YAML stream into objects.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	d := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := d.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("decoding: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// keysOf returns the keys of the objects in a file of the base.
func keysOf(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range decode(t, data) {
		keys = append(keys, key(u))
	}
	return keys
}

func kubectl(t *testing.T, bins harness.Binaries, kubeconfig string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if kubeconfig != "" {
		args = append([]string{"--kubeconfig=" + kubeconfig}, args...)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bins.Path("kubectl"), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// containers returns the containers of u's pod template (none if it has none).
func containers(u *unstructured.Unstructured) []map[string]any {
	list, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	var out []map[string]any
	for _, c := range list {
		out = append(out, c.(map[string]any))
	}
	return out
}

// sortedImages returns the images of every container of objs' pod templates, sorted.
func sortedImages(objs []*unstructured.Unstructured) []string {
	var images []string
	for _, u := range objs {
		for _, c := range containers(u) {
			images = append(images, c["image"].(string))
		}
	}
	slices.Sort(images)
	return images
}

// controllerArgs returns the args of the stork controller's container.
func controllerArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	for _, u := range objs {
		if key(u) == "Deployment/stork-system/stork" {
			args, _, _ := unstructured.NestedStringSlice(containers(u)[0], "args")
			return args
		}
	}
	t.Fatal("no Deployment stork-system/stork")
	return nil
}

// TestKustomize renders the base and every overlay with the kubectl that tests use (kustomize
// built in), checks what each leaves out and how it sets the controller's flags, then applies
// the base to a real API server as a user would and every overlay over it with
// --dry-run=server, so that schema, defaulting and admission see what users apply.
func TestKustomize(t *testing.T) {
	env := harness.New(t)
	bins := env.Bins

	embedded := map[string]bool{}
	crds, err := deploy.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds {
		embedded["CustomResourceDefinition//"+c.Name] = true
	}
	objs, err := deploy.Manifests()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		embedded[key(u)] = true
	}
	baseArgs := []string{"--drivers=local,longhorn,csi", "--driver-config=local.roots=/var/lib/stork/local"}
	webhook := keysOf(t, "base/manifests/50-webhook.yaml")
	scheduler := keysOf(t, "base/manifests/60-scheduler.yaml")
	agent := append(keysOf(t, "base/manifests/20-rbac-agent.yaml"), keysOf(t, "base/manifests/40-agent.yaml")...)

	for _, tc := range []struct {
		dir     string
		without []string
		args    []string
	}{
		{dir: ".", args: baseArgs},
		{dir: "base", args: baseArgs},
		{dir: "overlays/no-webhook", without: webhook, args: append(slices.Clone(baseArgs), "--webhook-port=0")},
		{dir: "overlays/no-scheduler", without: append(slices.Clone(webhook), scheduler...),
			args: append(slices.Clone(baseArgs), "--webhook-port=0", "--extender-bind-address=0")},
		{dir: "overlays/csi-only", without: agent, args: []string{"--drivers=csi"}},
	} {
		t.Run("render "+tc.dir, func(t *testing.T) {
			got := map[string]bool{}
			rendered := decode(t, kubectl(t, bins, "", "kustomize", tc.dir))
			for _, u := range rendered {
				if got[key(u)] {
					t.Errorf("%s rendered twice", key(u))
				}
				got[key(u)] = true
			}
			for k := range embedded {
				if want := !slices.Contains(tc.without, k); got[k] != want {
					t.Errorf("%s: rendered=%v, want %v", k, got[k], want)
				}
			}
			for k := range got {
				if !embedded[k] {
					t.Errorf("%s is rendered but not in deploy.CRDs or deploy.Manifests", k)
				}
			}
			if args := controllerArgs(t, rendered); !slices.Equal(args, tc.args) {
				t.Errorf("controller args %q, want %q", args, tc.args)
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "deploy", ControlPlaneOnly: true, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("apply the base", func(t *testing.T) {
		kubectl(t, bins, c.Kubeconfig, "apply", "-k", ".")
		out := string(kubectl(t, bins, c.Kubeconfig, "get", "-n", "stork-system", "deployment/stork", "daemonset/stork-agent",
			"deployment/stork-scheduler", "-o", "jsonpath={.items[*].spec.template.spec.containers[0].image}"))
		if want := "stork:dev stork:dev registry.k8s.io/kube-scheduler:v1.37.2"; out != want {
			t.Errorf("images %q, want %q", out, want)
		}
	})
	for _, dir := range []string{"overlays/no-webhook", "overlays/no-scheduler", "overlays/csi-only"} {
		t.Run("dry-run "+dir, func(t *testing.T) {
			out := kubectl(t, bins, c.Kubeconfig, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-k", dir)
			if !bytes.Contains(out, []byte("deployment.apps/stork serverside-applied (server dry run)")) {
				t.Errorf("the dry run did not apply the controller's Deployment:\n%s", out)
			}
		})
	}
	t.Run("image set once", func(t *testing.T) {
		// A user's overlay that renames the image renames it everywhere the base uses it.
		dir := t.TempDir()
		base, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(dir, filepath.Join(base, "base"))
		if err != nil {
			t.Fatal(err)
		}
		kust := fmt.Sprintf("resources:\n- %s\nimages:\n- {name: stork, newName: registry.example/stork, newTag: v9}\n", rel)
		if err := os.WriteFile(dir+"/kustomization.yaml", []byte(kust), 0o644); err != nil {
			t.Fatal(err)
		}
		images := sortedImages(decode(t, kubectl(t, bins, "", "kustomize", dir)))
		if want := []string{"registry.example/stork:v9", "registry.example/stork:v9", "registry.k8s.io/kube-scheduler:v1.37.2"}; !slices.Equal(images, want) {
			t.Errorf("images %q, want %q", images, want)
		}
	})
}
