package controllers

import (
	"context"
	"errors"
	"slices"
	"stork.dev/stork/backup/engine/resources"
	"stork.dev/stork/backup/engine/resources/resourcestest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// sourceCluster is a namespace "app" with objects to back up, objects the target cluster makes
// by itself, and a neighbour namespace.
func sourceCluster(t *testing.T) client.WithWatch {
	web := map[string]string{"app": "web"}
	meta := func(name string, l map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "app", Name: name, Labels: l, UID: types.UID("uid-" + name)}
	}
	controlledBy := func(m metav1.ObjectMeta, kind, name string) metav1.ObjectMeta {
		m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(true)}}
		return m
	}
	now := metav1.NewTime(time.Now())
	leaving := meta("leaving", web)
	leaving.DeletionTimestamp, leaving.Finalizers = &now, []string{"example.com/hold"}
	ownedNotControlled := meta("owned", nil)
	ownedNotControlled.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "settings", UID: "uid-settings"}}

	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"team": "a"}, UID: "uid-ns"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}},
		// Made by the target cluster in every namespace.
		&corev1.ServiceAccount{ObjectMeta: meta("default", nil)},
		&corev1.ConfigMap{ObjectMeta: meta("kube-root-ca.crt", nil), Data: map[string]string{"ca.crt": "x"}},
		&corev1.Secret{ObjectMeta: meta("web-token", web), Type: corev1.SecretTypeServiceAccountToken},
		// The application.
		&corev1.ServiceAccount{ObjectMeta: meta("web", web)},
		&corev1.ConfigMap{ObjectMeta: meta("settings", web), Data: map[string]string{"k": "v"}},
		&corev1.ConfigMap{ObjectMeta: ownedNotControlled},
		&corev1.ConfigMap{ObjectMeta: leaving},
		&corev1.Secret{ObjectMeta: meta("creds", web), Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"p": []byte("s")}},
		&corev1.PersistentVolumeClaim{ObjectMeta: meta("data", web), Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pvc-1"}},
		&corev1.Service{ObjectMeta: meta("web", web), Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.5",
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080}}}},
		&appsv1.Deployment{ObjectMeta: meta("web", web), Spec: appsv1.DeploymentSpec{Template: resourcestest.PodTemplate("node-1")}},
		&batchv1.CronJob{ObjectMeta: meta("nightly", nil), Spec: batchv1.CronJobSpec{Schedule: "@daily"}},
		// Recreated by their controllers: the Deployment's ReplicaSet and Pod, the CronJob's Job.
		&appsv1.ReplicaSet{ObjectMeta: controlledBy(meta("web-1", web), "Deployment", "web")},
		&corev1.Pod{ObjectMeta: controlledBy(meta("web-1-abc", web), "ReplicaSet", "web-1")},
		&batchv1.Job{ObjectMeta: controlledBy(meta("nightly-1", nil), "CronJob", "nightly")},
		// Not in the namespace.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "elsewhere", Labels: web}},
	}
	return fake.NewClientBuilder().WithScheme(resourcestest.NewScheme(t)).WithObjects(objs...).Build()
}

func TestCollect(t *testing.T) {
	tests := []struct {
		name string
		sel  labels.Selector
		want []string
	}{{
		name: "everything",
		want: []string{
			"Namespace app",
			"ServiceAccount app/web",
			"ConfigMap app/owned", "ConfigMap app/settings",
			"Secret app/creds",
			"PersistentVolumeClaim app/data",
			"Service app/web",
			"Deployment app/web",
			"CronJob app/nightly",
		},
	}, {
		name: "selector, Namespace included anyway",
		sel:  labels.SelectorFromSet(labels.Set{"app": "web"}),
		want: []string{
			"Namespace app",
			"ServiceAccount app/web",
			"ConfigMap app/settings",
			"Secret app/creds",
			"PersistentVolumeClaim app/data",
			"Service app/web",
			"Deployment app/web",
		},
	}, {
		name: "selector matching nothing",
		sel:  labels.SelectorFromSet(labels.Set{"app": "none"}),
		want: []string{"Namespace app"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Collect(context.Background(), sourceCluster(t), "app", tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			if got := objectNames(objs); !slices.Equal(got, tt.want) {
				t.Errorf("Collect =\n  %v\nwant\n  %v", got, tt.want)
			}
			for _, o := range objs {
				if _, ok := resources.KindOf(o); !ok {
					t.Errorf("%s: GVK %v is not one of resources.Kinds", resources.Describe(o), o.GroupVersionKind())
				}
				for _, p := range [][]string{{"metadata", "uid"}, {"metadata", "resourceVersion"},
					{"metadata", "ownerReferences"}, {"metadata", "creationTimestamp"}, {"status"}} {
					if _, ok := resourcestest.Field(o.Object, p...); ok {
						t.Errorf("%s: %s not stripped", resources.Describe(o), strings.Join(p, "."))
					}
				}
			}
		})
	}
}

func TestCollectStripsPerKind(t *testing.T) {
	objs, err := Collect(context.Background(), sourceCluster(t), "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, o := range objs {
		byName[resources.Describe(o)] = o.Object
	}
	for name, p := range map[string][]string{
		"Service app/web":                {"spec", "clusterIP"},
		"PersistentVolumeClaim app/data": {"spec", "volumeName"},
		"Deployment app/web":             {"spec", "template", "spec", "nodeName"},
	} {
		if v, ok := resourcestest.Field(byName[name], p...); ok {
			t.Errorf("%s: %s = %v, want it stripped", name, strings.Join(p, "."), v)
		}
	}
	if v, _ := resourcestest.Field(byName["Secret app/creds"], "data", "p"); v != "cw==" { // base64 of "s"
		t.Errorf("Secret app/creds data.p = %v, want the secret's data", v)
	}
}

func TestCollectErrors(t *testing.T) {
	listErr := errors.New("connection refused")
	tests := []struct {
		name  string
		ns    string
		funcs interceptor.Funcs
		want  string
	}{{
		name: "missing namespace",
		ns:   "absent",
		want: "reading Namespace absent: ",
	}, {
		name: "list fails",
		ns:   "app",
		funcs: interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, o ...client.ListOption) error {
			if l.GetObjectKind().GroupVersionKind().Kind == "SecretList" {
				return listErr
			}
			return c.List(ctx, l, o...)
		}},
		want: "listing secrets in namespace app: connection refused",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := interceptor.NewClient(sourceCluster(t), tt.funcs)
			objs, err := Collect(context.Background(), c, tt.ns, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Collect = %d objects, %v; want error containing %q", len(objs), err, tt.want)
			}
		})
	}
}

// TestCollectPages checks that Collect follows continue tokens; the fake client ignores limits,
// so the interceptor splits ConfigMap lists in two pages.
func TestCollectPages(t *testing.T) {
	var continues []string
	c := interceptor.NewClient(sourceCluster(t), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, opts ...client.ListOption) error {
			if err := c.List(ctx, l, opts...); err != nil || l.GetObjectKind().GroupVersionKind().Kind != "ConfigMapList" {
				return err
			}
			lo := (&client.ListOptions{}).ApplyOptions(opts)
			if lo.Limit <= 0 {
				t.Errorf("ConfigMaps listed without a limit")
			}
			continues = append(continues, lo.Continue)
			u := l.(*unstructured.UnstructuredList)
			if lo.Continue == "" {
				u.Items = u.Items[:1]
				u.SetContinue("page-2")
			} else {
				u.Items = u.Items[1:]
			}
			return nil
		},
	})
	objs, err := Collect(context.Background(), c, "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(continues, []string{"", "page-2"}) {
		t.Errorf("continue tokens sent = %q, want \"\" then page-2", continues)
	}
	var cms []string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			cms = append(cms, o.GetName())
		}
	}
	if !slices.Equal(cms, []string{"owned", "settings"}) {
		t.Errorf("ConfigMaps = %v, want owned and settings from both pages", cms)
	}
}

// objectNames lists objects as resources.Describe does, for comparing orders.
func objectNames(objs []*unstructured.Unstructured) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = resources.Describe(o)
	}
	return out
}
