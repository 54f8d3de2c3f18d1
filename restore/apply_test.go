package restore

import (
	"context"
	"errors"
	"slices"
	"stork.dev/stork/backup/engine/resources"
	"stork.dev/stork/backup/engine/resources/resourcestest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fieldpath "k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

const restoreUID = "restore-uid-1"

func targetCluster(t *testing.T, objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(resourcestest.NewScheme(t)).WithObjects(objs...).WithReturnManagedFields().Build()
}

func settings(data string, annotations map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "settings", Annotations: annotations},
		Data: map[string]string{"k": data}}
}

func getU(t *testing.T, c client.Client, like *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(like.GroupVersionKind())
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(like), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestApplyCreates(t *testing.T) {
	c := targetCluster(t)
	obj := resourcestest.Unstructured(t, settings("backup", map[string]string{"example.com/a": "b"}))
	resources.Strip(obj)

	for attempt := 1; attempt <= 2; attempt++ {
		// The second attempt is a controller restarted after creating the object.
		result, msg, err := Apply(context.Background(), c, obj, storkv1.ExistingFail, restoreUID)
		if err != nil || result != Created || msg != "" {
			t.Fatalf("attempt %d: Apply = %q, %q, %v; want Created", attempt, result, msg, err)
		}
	}
	got := getU(t, c, obj)
	if a := got.GetAnnotations(); a[storkv1.AnnotationRestoredBy] != restoreUID || a["example.com/a"] != "b" {
		t.Errorf("annotations = %v, want the backup's and %s=%s", a, storkv1.AnnotationRestoredBy, restoreUID)
	}
	if v, _ := resourcestest.Field(got.Object, "data", "k"); v != "backup" {
		t.Errorf("data.k = %v, want backup", v)
	}
	if mf := got.GetManagedFields(); len(mf) == 0 || mf[0].Manager != FieldManager {
		t.Errorf("managedFields = %v, want manager %s", mf, FieldManager)
	}
	if _, ok := obj.GetAnnotations()[storkv1.AnnotationRestoredBy]; ok {
		t.Error("Apply modified its argument")
	}
}

func TestApplyExisting(t *testing.T) {
	now := metav1.NewTime(time.Now())
	terminatingNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", DeletionTimestamp: &now, Finalizers: []string{"example.com/x"}}}
	terminatingCM := settings("target", map[string]string{storkv1.AnnotationRestoredBy: restoreUID})
	terminatingCM.DeletionTimestamp, terminatingCM.Finalizers = &now, []string{"example.com/x"}
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"owner": "target"}}}

	tests := []struct {
		name     string
		existing client.Object
		obj      client.Object // what the backup holds
		policy   storkv1.ExistingObjectPolicy
		result   string
		message  []string
		wantData string // the ConfigMap's data.k afterwards, if a ConfigMap
	}{
		{"foreign, default policy", settings("target", nil), settings("backup", nil), "", Failed,
			[]string{"ConfigMap app/settings already exists", "existingObjectPolicy", "Skip or Update", "namespaceMapping"}, "target"},
		{"foreign, Fail", settings("target", nil), settings("backup", nil), storkv1.ExistingFail, Failed,
			[]string{"ConfigMap app/settings already exists"}, "target"},
		{"another restore's, Fail", settings("target", map[string]string{storkv1.AnnotationRestoredBy: "other"}), settings("backup", nil), storkv1.ExistingFail, Failed,
			[]string{"already exists"}, "target"},
		{"foreign, Skip", settings("target", nil), settings("backup", nil), storkv1.ExistingSkip, Skipped,
			[]string{"ConfigMap app/settings already exists", "Skip"}, "target"},
		{"this restore's, Skip", settings("target", map[string]string{storkv1.AnnotationRestoredBy: restoreUID}), settings("backup", nil), storkv1.ExistingSkip, Created,
			nil, "target"},
		{"foreign, unknown policy", settings("target", nil), settings("backup", nil), "Overwrite", Failed,
			[]string{`"Overwrite"`}, "target"},
		{"being deleted, this restore's", terminatingCM, settings("backup", nil), storkv1.ExistingUpdate, Failed,
			[]string{"being deleted"}, "target"},
		{"Namespace, Fail", namespace, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, storkv1.ExistingFail, Skipped,
			[]string{"Namespace app exists", "shared"}, ""},
		{"Namespace, Update", namespace, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"owner": "backup"}}}, storkv1.ExistingUpdate, Skipped,
			[]string{"Namespace app exists"}, ""},
		{"Namespace being deleted", terminatingNS, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, storkv1.ExistingSkip, Failed,
			[]string{"Namespace app exists and is being deleted"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := targetCluster(t, tt.existing)
			obj := resourcestest.Unstructured(t, tt.obj)
			resources.Strip(obj)
			result, msg, err := Apply(context.Background(), c, obj, tt.policy, restoreUID)
			if err != nil || result != tt.result {
				t.Fatalf("Apply = %q, %q, %v; want %s", result, msg, err, tt.result)
			}
			for _, w := range tt.message {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if tt.message == nil && msg != "" {
				t.Errorf("message = %q, want none", msg)
			}
			got := getU(t, c, obj)
			if tt.wantData != "" {
				if v, _ := resourcestest.Field(got.Object, "data", "k"); v != tt.wantData {
					t.Errorf("data.k = %v, want %s (unchanged)", v, tt.wantData)
				}
			}
			if got.GetKind() == "Namespace" && got.GetLabels()["owner"] == "backup" {
				t.Error("existing Namespace was modified")
			}
		})
	}
}

// TestApplyUpdate runs server-side apply against the fake client's field-managed tracker.
func TestApplyUpdate(t *testing.T) {
	existing := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web", Labels: map[string]string{"v": "target", "extra": "target"}},
		Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.9", ClusterIPs: []string{"10.0.0.9"},
			Selector: map[string]string{"app": "old"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	backup := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web", Labels: map[string]string{"v": "backup"}},
		Spec: corev1.ServiceSpec{ClusterIP: "10.1.1.1", Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
	}
	c := targetCluster(t, existing)
	obj := resourcestest.Unstructured(t, backup)
	resources.Strip(obj) // drops the source's clusterIP
	// As a backup of a restored application could hold, were it not stripped.
	obj.SetAnnotations(map[string]string{storkv1.AnnotationRestoredBy: "stale"})

	for attempt := 1; attempt <= 2; attempt++ {
		result, msg, err := Apply(context.Background(), c, obj, storkv1.ExistingUpdate, restoreUID)
		if err != nil || result != Updated || msg != "" {
			t.Fatalf("attempt %d: Apply = %q, %q, %v; want Updated", attempt, result, msg, err)
		}
	}
	got := getU(t, c, obj)
	for _, tt := range []struct {
		path []string
		want any
	}{
		{[]string{"spec", "selector", "app"}, "web"}, // the backup's
		{[]string{"metadata", "labels", "v"}, "backup"},
		{[]string{"spec", "clusterIP"}, "10.0.0.9"}, // the target's
		{[]string{"metadata", "labels", "extra"}, "target"},
	} {
		if v, _ := resourcestest.Field(got.Object, tt.path...); v != tt.want {
			t.Errorf("%s = %v (%T), want %v", strings.Join(tt.path, "."), v, v, tt.want)
		}
	}
	// ports is a list keyed by port and protocol: apply adds the backup's entry and, as on a real
	// API server, leaves the entry another manager owns.
	var ports []int64
	list, _, _ := unstructured.NestedSlice(got.Object, "spec", "ports")
	for _, p := range list {
		n, _, _ := unstructured.NestedInt64(p.(map[string]any), "port")
		ports = append(ports, n)
	}
	if !slices.Contains(ports, 8080) {
		t.Errorf("spec.ports = %v, want the backup's 8080 among them", ports)
	}

	// An updated object is not this restore's: a later attempt must report Updated again.
	if a, ok := got.GetAnnotations()[storkv1.AnnotationRestoredBy]; ok {
		t.Errorf("updated object has %s=%s", storkv1.AnnotationRestoredBy, a)
	}
	found := false
	for _, mf := range got.GetManagedFields() {
		found = found || (mf.Manager == FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply)
	}
	if !found {
		t.Errorf("managedFields = %v, want an Apply entry of %s", got.GetManagedFields(), FieldManager)
	}
}

func TestApplyErrors(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	createFails := func(err error) interceptor.Funcs {
		return interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error { return err }}
	}
	getFails := func(err error) interceptor.Funcs {
		return interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return err
		}}
	}
	applyFails := func(err error) interceptor.Funcs {
		return interceptor.Funcs{Apply: func(context.Context, client.WithWatch, runtime.ApplyConfiguration, ...client.ApplyOption) error {
			return err
		}}
	}
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "settings",
		fieldpath.ErrorList{fieldpath.Invalid(fieldpath.NewPath("data"), "x", "field is immutable")})

	tests := []struct {
		name     string
		existing bool
		funcs    interceptor.Funcs
		policy   storkv1.ExistingObjectPolicy
		result   string // "" when err is expected
		contains string // in the message, or in the error
	}{
		{"invalid", false, createFails(invalid), "", Failed, "field is immutable"},
		{"forbidden", false, createFails(apierrors.NewForbidden(gr, "settings", errors.New("quota exceeded"))), "", Failed, "quota exceeded"},
		{"already exists race", false, createFails(apierrors.NewAlreadyExists(gr, "settings")), "", Failed, "already exists"},
		{"namespace missing", false, createFails(apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "app")), "", Failed, `namespaces "app" not found`},
		{"kind not served", false, getFails(&meta.NoKindMatchError{GroupKind: schema.GroupKind{Kind: "ConfigMap"}}), "", Failed, "no matches for kind"},
		{"update immutable", true, applyFails(invalid), storkv1.ExistingUpdate, Failed, "field is immutable"},
		{"server timeout", false, createFails(apierrors.NewServerTimeout(gr, "create", 1)), "", "", "creating ConfigMap app/settings"},
		{"conflict", true, applyFails(apierrors.NewConflict(gr, "settings", errors.New("modified"))), storkv1.ExistingUpdate, "", "updating ConfigMap app/settings"},
		{"throttled", false, getFails(apierrors.NewTooManyRequests("slow down", 1)), "", "", "reading ConfigMap app/settings"},
		{"internal error", false, createFails(apierrors.NewInternalError(errors.New("etcd"))), "", "", "etcd"},
		{"webhook unreachable", false, createFails(apierrors.NewServiceUnavailable("webhook")), "", "", "webhook"},
		{"cancelled", false, getFails(context.Canceled), "", "", "context canceled"},
		{"connection refused", false, createFails(errors.New("dial tcp: connection refused")), "", "", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var existing []client.Object
			if tt.existing {
				existing = append(existing, settings("target", nil))
			}
			c := interceptor.NewClient(targetCluster(t, existing...), tt.funcs)
			obj := resourcestest.Unstructured(t, settings("backup", nil))
			result, msg, err := Apply(context.Background(), c, obj, tt.policy, restoreUID)
			if tt.result == "" {
				if err == nil || result != "" || !strings.Contains(err.Error(), tt.contains) {
					t.Fatalf("Apply = %q, %q, %v; want an error containing %q to retry", result, msg, err, tt.contains)
				}
				return
			}
			if err != nil || result != tt.result || !strings.Contains(msg, tt.contains) {
				t.Fatalf("Apply = %q, %q, %v; want %s with %q", result, msg, err, tt.result, tt.contains)
			}
		})
	}
}

func TestApplyUnknownKind(t *testing.T) {
	pod := resourcestest.Unstructured(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p"}})
	result, msg, err := Apply(context.Background(), targetCluster(t), pod, storkv1.ExistingUpdate, restoreUID)
	if err != nil || result != Failed || !strings.Contains(msg, `"Pod" is not one Stork restores`) {
		t.Fatalf("Apply = %q, %q, %v; want Failed", result, msg, err)
	}
}

func TestApplyUpdateConfigMap(t *testing.T) {
	existing := settings("target", nil)
	existing.Data["extra"] = "target"
	c := targetCluster(t, existing)
	obj := resourcestest.Unstructured(t, settings("backup", nil))
	result, msg, err := Apply(context.Background(), c, obj, storkv1.ExistingUpdate, restoreUID)
	if err != nil || result != Updated {
		t.Fatalf("Apply = %q, %q, %v; want Updated", result, msg, err)
	}
	got := getU(t, c, obj)
	if k, _ := resourcestest.Field(got.Object, "data", "k"); k != "backup" {
		t.Errorf("data.k = %v, want the backup's value", k)
	}
	if e, _ := resourcestest.Field(got.Object, "data", "extra"); e != "target" {
		t.Errorf("data.extra = %v, want the target's key kept", e)
	}
}
