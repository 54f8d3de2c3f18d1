package deploy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"stork.dev/stork/internal/harness"
)

const chart = "helm/stork"

// helm runs the helm command; with wantErr it returns the error output of a run that must fail.
func helm(t *testing.T, bin string, wantErr bool, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	switch {
	case wantErr && err == nil:
		t.Fatalf("helm %s succeeded, want an error", strings.Join(args, " "))
	case wantErr:
		return stderr.Bytes()
	case err != nil:
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// comparable returns the objects by key, without what only one install path adds: Helm's own
// labels, and the Namespace object (Helm installs into a namespace it is given).
func comparable(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			continue
		}
		labels := u.GetLabels()
		delete(labels, "helm.sh/chart")
		delete(labels, "app.kubernetes.io/managed-by")
		if len(labels) == 0 {
			labels = nil
		}
		u.SetLabels(labels)
		b, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		out[key(u)] = string(b)
	}
	return out
}

// TestHelmChart lints the chart, proves that its renders equal the kustomize base and overlays
// for the same choices (one install, two paths), checks the chart's own values (image, metrics,
// a BackupLocation with its Secrets) and its refusals, and installs it into a real API server.
func TestHelmChart(t *testing.T) {
	bin := harness.RequireHelm(t)
	env := harness.New(t)

	t.Run("lint", func(t *testing.T) {
		out := helm(t, bin, false, "lint", "--strict", chart)
		if !bytes.Contains(out, []byte("0 chart(s) failed")) || bytes.Contains(out, []byte("[WARNING]")) {
			t.Errorf("helm lint:\n%s", out)
		}
	})

	template := func(t *testing.T, set ...string) []*unstructured.Unstructured {
		args := []string{"template", "stork", chart, "--namespace=stork-system", "--include-crds"}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		return decode(t, helm(t, bin, false, args...))
	}
	for _, tc := range []struct {
		kustomize string
		set       []string
	}{
		{kustomize: "base"},
		{kustomize: "overlays/no-webhook", set: []string{"webhook.enabled=false"}},
		{kustomize: "overlays/no-scheduler", set: []string{"webhook.enabled=false", "scheduler.enabled=false"}},
		{kustomize: "overlays/csi-only", set: []string{"drivers={csi}", "driverConfig=null", "agent.enabled=false"}},
	} {
		t.Run("same as "+tc.kustomize, func(t *testing.T) {
			want := comparable(t, decode(t, kubectl(t, env.Bins, "", "kustomize", tc.kustomize)))
			got := comparable(t, template(t, tc.set...))
			for k, w := range want {
				if g, ok := got[k]; !ok {
					t.Errorf("%s: in kustomize %s, not in the chart's render", k, tc.kustomize)
				} else if g != w {
					t.Errorf("%s differs:\nchart:     %s\nkustomize: %s", k, g, w)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: rendered by the chart, not in kustomize %s", k, tc.kustomize)
				}
			}
		})
	}

	t.Run("values", func(t *testing.T) {
		objs := template(t, "image.repository=registry.example/stork", "image.tag=v9", "metrics.serviceMonitor.enabled=true",
			"metrics.serviceMonitor.labels.release=prom", "backupLocation.create=true", "backupLocation.url=s3://backups/prod",
			"backupLocation.s3.endpoint=http://minio.minio:9000", "backupLocation.s3.forcePathStyle=true",
			"backupLocation.credentials.data.accessKeyID=AK", "backupLocation.credentials.data.secretAccessKey=SK",
			"backupLocation.encryption.passphrase=correct horse", "backupLocation.accessMode=ReadOnly",
			"backupLocation.syncPeriod=30s", "controller.replicas=1")
		byKey := map[string]*unstructured.Unstructured{}
		for _, u := range objs {
			byKey[key(u)] = u
		}
		images := sortedImages(objs)
		if want := []string{"registry.example/stork:v9", "registry.example/stork:v9", "registry.k8s.io/kube-scheduler:v1.37.2"}; !slices.Equal(images, want) {
			t.Errorf("images %q, want %q", images, want)
		}
		for _, k := range []string{"Service/stork-system/stork-controller-metrics", "Service/stork-system/stork-agent-metrics", "ServiceMonitor/stork-system/stork"} {
			if byKey[k] == nil {
				t.Errorf("no %s with metrics.serviceMonitor.enabled", k)
			}
		}
		if sm := byKey["ServiceMonitor/stork-system/stork"]; sm != nil && sm.GetLabels()["release"] != "prom" {
			t.Errorf("ServiceMonitor labels %v lack release=prom", sm.GetLabels())
		}
		loc := byKey["BackupLocation/stork-system/default"]
		if loc == nil {
			t.Fatal("no BackupLocation with backupLocation.create")
		}
		spec, _, _ := unstructured.NestedMap(loc.Object, "spec")
		wantSpec := map[string]any{"url": "s3://backups/prod", "default": true, "accessMode": "ReadOnly", "syncPeriod": "30s",
			"s3":                     map[string]any{"endpoint": "http://minio.minio:9000", "forcePathStyle": true},
			"credentialsSecretRef":   map[string]any{"name": "default-credentials"},
			"encryptionKeySecretRef": map[string]any{"name": "default-encryption", "key": "passphrase"}}
		if g, w := mustJSON(t, spec), mustJSON(t, wantSpec); g != w {
			t.Errorf("BackupLocation spec %s, want %s", g, w)
		}
		for k, want := range map[string]map[string]string{
			"Secret/stork-system/default-credentials": {"accessKeyID": "AK", "secretAccessKey": "SK"},
			"Secret/stork-system/default-encryption":  {"passphrase": "correct horse"},
		} {
			s := byKey[k]
			if s == nil {
				t.Errorf("no %s", k)
				continue
			}
			data, _, _ := unstructured.NestedStringMap(s.Object, "data")
			for dk, dv := range want {
				if got, _ := base64.StdEncoding.DecodeString(data[dk]); string(got) != dv {
					t.Errorf("%s[%s] = %q, want %q", k, dk, got, dv)
				}
			}
		}
		if replicas, _, _ := unstructured.NestedFieldNoCopy(byKey["Deployment/stork-system/stork"].Object, "spec", "replicas"); fmt.Sprint(replicas) != "1" {
			t.Errorf("controller replicas %v, want 1", replicas)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			set  []string
			want string
		}{
			{set: []string{"scheduler.enabled=false"}, want: "webhook.enabled needs scheduler.enabled"},
			{set: []string{"backupLocation.create=true", "backupLocation.url=file:///backups"}, want: "backupLocation.encryption: set passphrase or existingSecret"},
			{set: []string{"backupLocation.create=true", "backupLocation.encryption.passphrase=x"}, want: "backupLocation.url is required"},
			{set: []string{"backupLocation.create=true", "backupLocation.url=file:///b", "backupLocation.encryption.passphrase=x",
				"backupLocation.encryption.existingSecret=k"}, want: "not both"},
			{set: []string{"agent.root=/srv/stork"}, want: "driverConfig.local.roots (/var/lib/stork/local) must be agent.root (/srv/stork)"},
		} {
			args := []string{"template", "stork", chart}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			if out := helm(t, bin, true, args...); !bytes.Contains(out, []byte(tc.want)) {
				t.Errorf("--set %v: %s, want an error containing %q", tc.set, out, tc.want)
			}
		}
	})

	t.Run("install", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "helm", ControlPlaneOnly: true, SkipCRDs: true})
		if err != nil {
			t.Fatal(err)
		}
		// Another namespace than the base's: every reference to it must follow.
		helm(t, bin, false, "install", "stork", chart, "--kubeconfig="+c.Kubeconfig, "--namespace=storage", "--create-namespace",
			"--set=backupLocation.create=true", "--set=backupLocation.url=file:///var/lib/stork/backups",
			"--set=backupLocation.encryption.passphrase=correct horse")
		out := string(kubectl(t, env.Bins, c.Kubeconfig, "get", "-n", "storage", "deployment/stork", "daemonset/stork-agent",
			"deployment/stork-scheduler", "backuplocation/default", "secret/default-encryption", "-o", "name"))
		if want := "deployment.apps/stork\ndaemonset.apps/stork-agent\ndeployment.apps/stork-scheduler\nbackuplocation.stork.dev/default\nsecret/default-encryption\n"; out != want {
			t.Errorf("installed:\n%s\nwant:\n%s", out, want)
		}
		hook := string(kubectl(t, env.Bins, c.Kubeconfig, "get", "mutatingwebhookconfiguration/stork-pods", "-o",
			"jsonpath={.webhooks[0].clientConfig.service.namespace} {.webhooks[0].namespaceSelector.matchExpressions[0].values}"))
		if want := `storage ["kube-system","storage"]`; hook != want {
			t.Errorf("webhook service namespace and excluded namespaces %q, want %q", hook, want)
		}
		subjects := string(kubectl(t, env.Bins, c.Kubeconfig, "get", "clusterrolebinding/stork-controller", "clusterrolebinding/stork-scheduler",
			"-o", "jsonpath={.items[*].subjects[*].namespace}"))
		if subjects != "storage storage" {
			t.Errorf("cluster role bindings name service accounts in %q, want storage", subjects)
		}
		helm(t, bin, false, "uninstall", "stork", "--kubeconfig="+c.Kubeconfig, "--namespace=storage")
		// The passphrase outlives the release (helm.sh/resource-policy: keep): without it no
		// backup can be read.
		if out := string(kubectl(t, env.Bins, c.Kubeconfig, "get", "-n", "storage", "secret/default-encryption", "-o", "name")); out != "secret/default-encryption\n" {
			t.Errorf("after uninstall: %q", out)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
