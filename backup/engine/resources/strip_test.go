package resources

import (
	"stork.dev/stork/backup/engine/resources/resourcestest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// clusterMeta is metadata as the source cluster returns it, with fields Strip must remove.
func clusterMeta(name string, annotations map[string]string) metav1.ObjectMeta {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return metav1.ObjectMeta{
		Namespace: "app", Name: name,
		UID: "uid-1", ResourceVersion: "42", Generation: 3, CreationTimestamp: now,
		DeletionTimestamp: &now, DeletionGracePeriodSeconds: ptr.To[int64](30),
		SelfLink:        "/api/v1/namespaces/app/x/" + name,
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "uid-0"}},
		Finalizers:      []string{"example.com/keep"},
		Labels:          map[string]string{"app": "web"},
		Annotations:     annotations,
	}
}

func TestStrip(t *testing.T) {
	metaGone := [][]string{
		{"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "generation"},
		{"metadata", "creationTimestamp"}, {"metadata", "deletionTimestamp"},
		{"metadata", "deletionGracePeriodSeconds"}, {"metadata", "managedFields"}, {"metadata", "selfLink"},
		{"metadata", "ownerReferences"}, {"metadata", "finalizers"}, {"status"},
	}
	metaKept := [][]string{{"metadata", "name"}, {"metadata", "namespace"}, {"metadata", "labels", "app"}}
	snapshot := &corev1.TypedObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "snap"}

	tests := []struct {
		name string
		obj  runtime.Object
		gone [][]string
		kept [][]string
	}{{
		name: "ConfigMap metadata and annotations",
		obj: &corev1.ConfigMap{ObjectMeta: clusterMeta("settings", map[string]string{
			"pv.kubernetes.io/bind-completed":    "yes",
			"deployment.kubernetes.io/revision":  "7",
			"stork.dev/restored-by":              "other-restore",
			"example.com/owner":                  "team-a",
			"kubectl.kubernetes.io/restartedAt":  "2026-01-01T00:00:00Z",
			"volume.kubernetes.io/selected-node": "node-1",
		}), Data: map[string]string{"k": "v"}},
		gone: [][]string{
			{"metadata", "annotations", "pv.kubernetes.io/bind-completed"},
			{"metadata", "annotations", "deployment.kubernetes.io/revision"},
			{"metadata", "annotations", "stork.dev/restored-by"},
			{"metadata", "annotations", "volume.kubernetes.io/selected-node"},
		},
		kept: [][]string{
			{"data", "k"},
			{"metadata", "annotations", "example.com/owner"},
			{"metadata", "annotations", "kubectl.kubernetes.io/restartedAt"},
		},
	}, {
		name: "only cluster annotations: no empty annotations left",
		obj:  &corev1.Secret{ObjectMeta: clusterMeta("creds", map[string]string{"pv.kubernetes.io/bound-by-controller": "yes"}), Type: corev1.SecretTypeOpaque},
		gone: [][]string{{"metadata", "annotations"}},
		kept: [][]string{{"type"}},
	}, {
		name: "PersistentVolumeClaim from a snapshot",
		obj: &corev1.PersistentVolumeClaim{
			ObjectMeta: clusterMeta("data", map[string]string{
				"volume.kubernetes.io/storage-provisioner":      "csi.example.com",
				"volume.beta.kubernetes.io/storage-provisioner": "csi.example.com",
				"volume.beta.kubernetes.io/storage-class":       "fast",
			}),
			Spec: corev1.PersistentVolumeClaimSpec{
				VolumeName: "pvc-1234", StorageClassName: ptr.To("fast"),
				DataSource:    &corev1.TypedLocalObjectReference{APIGroup: snapshot.APIGroup, Kind: "VolumeSnapshot", Name: "snap"},
				DataSourceRef: snapshot,
			},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
		},
		gone: [][]string{
			{"spec", "volumeName"}, {"spec", "dataSource"}, {"spec", "dataSourceRef"},
			{"metadata", "annotations", "volume.kubernetes.io/storage-provisioner"},
			{"metadata", "annotations", "volume.beta.kubernetes.io/storage-provisioner"},
		},
		kept: [][]string{{"spec", "storageClassName"}, {"metadata", "annotations", "volume.beta.kubernetes.io/storage-class"}},
	}, {
		name: "PersistentVolumeClaim cloned from a claim keeps its source",
		obj: &corev1.PersistentVolumeClaim{ObjectMeta: clusterMeta("copy", nil), Spec: corev1.PersistentVolumeClaimSpec{
			VolumeName: "pvc-1", DataSource: &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "data"}}},
		gone: [][]string{{"spec", "volumeName"}},
		kept: [][]string{{"spec", "dataSource", "name"}},
	}, {
		name: "Service with cluster IP and node ports",
		obj: &corev1.Service{ObjectMeta: clusterMeta("web", nil), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.5", ClusterIPs: []string{"10.0.0.5"},
			HealthCheckNodePort: 31000, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443, NodePort: 30443}},
		}},
		gone: [][]string{{"spec", "clusterIP"}, {"spec", "clusterIPs"}, {"spec", "healthCheckNodePort"},
			{"spec", "ports", "0", "nodePort"}, {"spec", "ports", "1", "nodePort"}},
		kept: [][]string{{"spec", "type"}, {"spec", "ports", "0", "port"}, {"spec", "ports", "1", "name"}},
	}, {
		name: "headless Service keeps None",
		obj: &corev1.Service{ObjectMeta: clusterMeta("db", nil), Spec: corev1.ServiceSpec{
			ClusterIP: "None", ClusterIPs: []string{"None"}, Ports: []corev1.ServicePort{{Port: 5432}}}},
		kept: [][]string{{"spec", "clusterIP"}, {"spec", "clusterIPs"}},
	}, {
		name: "Job selector and controller-uid labels",
		obj: &batchv1.Job{ObjectMeta: clusterMeta("migrate", nil), Spec: batchv1.JobSpec{
			ManualSelector: ptr.To(false),
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": "u"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
					"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "job-name": "migrate"}},
				Spec: corev1.PodSpec{NodeName: "node-1", RestartPolicy: corev1.RestartPolicyNever},
			},
		}},
		gone: [][]string{{"spec", "selector"}, {"spec", "manualSelector"},
			{"spec", "template", "metadata", "labels", "controller-uid"},
			{"spec", "template", "metadata", "labels", "batch.kubernetes.io/controller-uid"},
			{"spec", "template", "spec", "nodeName"}},
		kept: [][]string{{"spec", "template", "metadata", "labels", "job-name"}, {"spec", "template", "spec", "restartPolicy"}},
	}, {
		name: "Deployment",
		obj: &appsv1.Deployment{ObjectMeta: clusterMeta("web", map[string]string{"deployment.kubernetes.io/revision": "2"}),
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: resourcestest.PodTemplate("node-1")}},
		gone: [][]string{{"spec", "template", "spec", "nodeName"}, {"metadata", "annotations"}},
		kept: [][]string{{"spec", "replicas"}, {"spec", "template", "spec", "containers"},
			{"spec", "template", "metadata", "annotations", "kubectl.kubernetes.io/restartedAt"}},
	}, {
		name: "StatefulSet",
		obj: &appsv1.StatefulSet{ObjectMeta: clusterMeta("db", nil),
			Spec: appsv1.StatefulSetSpec{ServiceName: "db", Template: resourcestest.PodTemplate("node-1")}},
		gone: [][]string{{"spec", "template", "spec", "nodeName"}},
		kept: [][]string{{"spec", "serviceName"}, {"spec", "template", "spec", "containers"}},
	}, {
		name: "DaemonSet",
		obj:  &appsv1.DaemonSet{ObjectMeta: clusterMeta("agent", nil), Spec: appsv1.DaemonSetSpec{Template: resourcestest.PodTemplate("node-1")}},
		gone: [][]string{{"spec", "template", "spec", "nodeName"}},
		kept: [][]string{{"spec", "template", "spec", "containers"}},
	}, {
		name: "CronJob job template",
		obj: &batchv1.CronJob{ObjectMeta: clusterMeta("nightly", nil), Spec: batchv1.CronJobSpec{
			Schedule: "0 0 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: resourcestest.PodTemplate("node-1")}}}},
		gone: [][]string{{"spec", "jobTemplate", "spec", "template", "spec", "nodeName"}},
		kept: [][]string{{"spec", "schedule"}, {"spec", "jobTemplate", "spec", "template", "spec", "containers"}},
	}, {
		name: "Namespace",
		obj: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", UID: "u", ResourceVersion: "1",
			Finalizers: []string{"example.com/x"}, Labels: map[string]string{"team": "a"}},
			Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
		gone: [][]string{{"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "finalizers"}, {"status"}},
		kept: [][]string{{"metadata", "name"}, {"metadata", "labels", "team"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := resourcestest.Unstructured(t, tt.obj)
			gone, kept := tt.gone, tt.kept
			if obj.GetKind() != "Namespace" {
				gone = append(gone, metaGone...)
				kept = append(kept, metaKept...)
			}
			for _, p := range append(gone, kept...) {
				// Make sure the test sets up what it checks: every path is there before.
				if _, ok := resourcestest.Field(obj.Object, p...); !ok && !(len(p) == 1 && p[0] == "status") {
					t.Fatalf("test setup: %s not set before Strip", strings.Join(p, "."))
				}
			}
			Strip(obj)
			for _, p := range gone {
				if v, ok := resourcestest.Field(obj.Object, p...); ok {
					t.Errorf("%s = %v after Strip, want it removed", strings.Join(p, "."), v)
				}
			}
			for _, p := range kept {
				if _, ok := resourcestest.Field(obj.Object, p...); !ok {
					t.Errorf("%s removed by Strip, want it kept", strings.Join(p, "."))
				}
			}
		})
	}
}
