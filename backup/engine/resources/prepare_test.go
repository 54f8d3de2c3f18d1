package resources

import (
	"slices"
	"stork.dev/stork/backup/engine/resources/resourcestest"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
)

// withClaims is a pod template mounting the claims and a ConfigMap.
func withClaims(claims ...string) corev1.PodTemplateSpec {
	t := resourcestest.PodTemplate("")
	for _, c := range claims {
		t.Spec.Volumes = append(t.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	t.Spec.Volumes = append(t.Spec.Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}})
	return t
}

// backedUp is a backup of namespace app, out of order.
func backedUp(t *testing.T) []*unstructured.Unstructured {
	m := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "app", Name: name} }
	fast := func(name string) metav1.ObjectMeta {
		o := m(name)
		o.Annotations = map[string]string{legacyStorageClassAnnotation: "fast"}
		return o
	}
	return []*unstructured.Unstructured{
		resourcestest.Unstructured(t, &batchv1.CronJob{ObjectMeta: m("nightly"), Spec: batchv1.CronJobSpec{Schedule: "@daily",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: withClaims("data")}}}}),
		resourcestest.Unstructured(t, &appsv1.Deployment{ObjectMeta: m("web"), Spec: appsv1.DeploymentSpec{Template: withClaims("data", "logs")}}),
		resourcestest.Unstructured(t, &corev1.Service{ObjectMeta: m("web")}),
		resourcestest.Unstructured(t, &appsv1.StatefulSet{ObjectMeta: m("db"), Spec: appsv1.StatefulSetSpec{Template: withClaims("data"),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{
				{ObjectMeta: metav1.ObjectMeta{Name: "pg", Annotations: map[string]string{legacyStorageClassAnnotation: "fast"}},
					Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast")}},
				{ObjectMeta: metav1.ObjectMeta{Name: "wal"}, Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("slow")}},
			}}}),
		resourcestest.Unstructured(t, &corev1.PersistentVolumeClaim{ObjectMeta: fast("data"), Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast")}}),
		resourcestest.Unstructured(t, &corev1.PersistentVolumeClaim{ObjectMeta: m("logs"), Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("slow")}}),
		resourcestest.Unstructured(t, &corev1.ConfigMap{ObjectMeta: m("settings")}),
		resourcestest.Unstructured(t, &corev1.Secret{ObjectMeta: m("creds")}),
		resourcestest.Unstructured(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"kubernetes.io/metadata.name": "app"}}}),
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	for _, o := range objs {
		if Describe(o) == name {
			return o.Object
		}
	}
	t.Fatalf("%s not among %v", name, names(objs))
	return nil
}

func TestPrepareMapping(t *testing.T) {
	in := backedUp(t)
	out, err := Prepare(in, Mapping{
		Namespaces:     map[string]string{"app": "app2", "unused": "x"},
		Claims:         map[string]string{"data": "data-restored"},
		StorageClasses: map[string]string{"fast": "standard"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{
		"Namespace app2",
		"ConfigMap app2/settings",
		"Secret app2/creds",
		"PersistentVolumeClaim app2/data-restored", "PersistentVolumeClaim app2/logs",
		"Service app2/web",
		"StatefulSet app2/db",
		"Deployment app2/web",
		"CronJob app2/nightly",
	}
	if got := names(out); !slices.Equal(got, wantOrder) {
		t.Fatalf("Prepare =\n  %v\nwant\n  %v", got, wantOrder)
	}

	tests := []struct {
		obj  string
		path []string
		want any
	}{
		{"Namespace app2", []string{"metadata", "labels", "kubernetes.io/metadata.name"}, "app2"},
		{"PersistentVolumeClaim app2/data-restored", []string{"spec", "storageClassName"}, "standard"},
		{"PersistentVolumeClaim app2/data-restored", []string{"metadata", "annotations", legacyStorageClassAnnotation}, "standard"},
		{"PersistentVolumeClaim app2/logs", []string{"spec", "storageClassName"}, "slow"},
		{"Deployment app2/web", []string{"spec", "template", "spec", "volumes", "0", "persistentVolumeClaim", "claimName"}, "data-restored"},
		{"Deployment app2/web", []string{"spec", "template", "spec", "volumes", "1", "persistentVolumeClaim", "claimName"}, "logs"},
		{"Deployment app2/web", []string{"spec", "template", "spec", "volumes", "2", "configMap", "name"}, "settings"},
		{"StatefulSet app2/db", []string{"spec", "template", "spec", "volumes", "0", "persistentVolumeClaim", "claimName"}, "data-restored"},
		{"StatefulSet app2/db", []string{"spec", "volumeClaimTemplates", "0", "spec", "storageClassName"}, "standard"},
		{"StatefulSet app2/db", []string{"spec", "volumeClaimTemplates", "0", "metadata", "annotations", legacyStorageClassAnnotation}, "standard"},
		{"StatefulSet app2/db", []string{"spec", "volumeClaimTemplates", "1", "spec", "storageClassName"}, "slow"},
		{"CronJob app2/nightly", []string{"spec", "jobTemplate", "spec", "template", "spec", "volumes", "0", "persistentVolumeClaim", "claimName"}, "data-restored"},
	}
	for _, tt := range tests {
		if got, _ := resourcestest.Field(find(t, out, tt.obj), tt.path...); got != tt.want {
			t.Errorf("%s %s = %v, want %v", tt.obj, strings.Join(tt.path, "."), got, tt.want)
		}
	}

	// The input is left alone: a Restore retried after an error prepares the same objects again.
	if got := names(in); got[0] != "CronJob app/nightly" || got[4] != "PersistentVolumeClaim app/data" {
		t.Errorf("input modified: %v", got)
	}
	if got, _ := resourcestest.Field(find(t, in, "Deployment app/web"), "spec", "template", "spec", "volumes", "0", "persistentVolumeClaim", "claimName"); got != "data" {
		t.Errorf("input Deployment's claim = %v, want data", got)
	}
}

func TestPrepareUnmappedKeepsNames(t *testing.T) {
	out, err := Prepare(backedUp(t), Mapping{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(out); got[0] != "Namespace app" || got[3] != "PersistentVolumeClaim app/data" {
		t.Errorf("Prepare without mapping = %v", got)
	}
}

func TestPrepareKinds(t *testing.T) {
	tests := []struct {
		name    string
		m       Mapping
		want    []string
		wantErr []string
	}{{
		name: "include",
		m:    Mapping{IncludeKinds: []string{"ConfigMap", "Service"}},
		want: []string{"Namespace app", "ConfigMap app/settings", "Service app/web"},
	}, {
		name: "include PVCs only, as volumesOnly does",
		m:    Mapping{IncludeKinds: []string{"PersistentVolumeClaim"}},
		want: []string{"Namespace app", "PersistentVolumeClaim app/data", "PersistentVolumeClaim app/logs"},
	}, {
		name: "exclude, and the Namespace stays",
		m:    Mapping{ExcludeKinds: []string{"Namespace", "Secret", "PersistentVolumeClaim", "StatefulSet", "Deployment", "CronJob"}},
		want: []string{"Namespace app", "ConfigMap app/settings", "Service app/web"},
	}, {
		name: "include and exclude",
		m:    Mapping{IncludeKinds: []string{"ConfigMap", "Secret"}, ExcludeKinds: []string{"Secret"}},
		want: []string{"Namespace app", "ConfigMap app/settings"},
	}, {
		name:    "unknown include",
		m:       Mapping{IncludeKinds: []string{"ConfigMap", "Pod", "configmap"}},
		wantErr: []string{"spec.includeKinds", `"Pod"`, `"configmap"`, "Namespace, ServiceAccount, ConfigMap", "Ingress"},
	}, {
		name:    "unknown exclude",
		m:       Mapping{ExcludeKinds: []string{"RoleBinding"}},
		wantErr: []string{"spec.excludeKinds", `"RoleBinding"`, "HorizontalPodAutoscaler"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Prepare(backedUp(t), tt.m)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Prepare = %v, want an error", names(out))
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(out); !slices.Equal(got, tt.want) {
				t.Errorf("Prepare = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPrepareRejectsUnknownObjects(t *testing.T) {
	objs := append(backedUp(t), resourcestest.Unstructured(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p"}}))
	_, err := Prepare(objs, Mapping{})
	if err == nil || !strings.Contains(err.Error(), `Pod app/p: kind v1 "Pod" is not one Stork restores`) {
		t.Fatalf("Prepare: %v, want an error naming Pod app/p", err)
	}
}
