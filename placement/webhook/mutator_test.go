package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"stork.dev/stork/drivers"
	"stork.dev/stork/placement"
)

const ns = "app"

// testDriver owns volumes of its CSI driver: bound ones by the PV, unbound ones by the
// storage class's provisioner.
type testDriver struct{ name, csi string }

func (d testDriver) Name() string { return d.name }
func (d testDriver) Owns(v drivers.Volume) bool {
	return v.PV != nil && v.PV.Spec.CSI != nil && v.PV.Spec.CSI.Driver == d.csi ||
		v.StorageClass != nil && v.StorageClass.Provisioner == d.csi
}
func (d testDriver) StorageNodes(context.Context) ([]drivers.StorageNode, error) { return nil, nil }
func (d testDriver) Locate(context.Context, drivers.Volume) (drivers.Location, error) {
	return drivers.Location{}, drivers.ErrNotOwned
}

func testDrivers() *drivers.Set {
	return drivers.NewSet(testDriver{"test", "test.csi"}, testDriver{"beta", "beta.csi"})
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	return s
}

func class(name, provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner}
}

func csiPV(name, driver string) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}}
	pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: name}
	return pv
}

func claim(name, class, volume string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(class), VolumeName: volume},
	}
}

func objects() []client.Object {
	return []client.Object{
		class("fast", "test.csi"), class("slow", "unknown.csi"),
		csiPV("pv-test", "test.csi"), csiPV("pv-beta", "beta.csi"), csiPV("pv-unknown", "unknown.csi"),
		// Bound: owned by its PV (no class).
		claim("data", "", "pv-test"),
		claim("beta", "", "pv-beta"),
		claim("unknown", "slow", "pv-unknown"),
		// Unbound: owned by its class's provisioner.
		claim("pending", "fast", ""),
		claim("pending-unknown", "slow", ""),
	}
}

// pod is a pod of the test namespace mounting the claims. Like the API server's, its JSON does
// not always name the namespace; the request does.
func pod(mod func(*corev1.Pod), claims ...string) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-0"},
		Spec: corev1.PodSpec{
			SchedulerName: corev1.DefaultSchedulerName, // as the API server defaults it
			Containers:    []corev1.Container{{Name: "web", Image: "nginx"}},
		},
	}
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	if mod != nil {
		mod(p)
	}
	return p
}

func request(t *testing.T, op admissionv1.Operation, obj any) admission.Request {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid-1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Operation: op,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// apply applies the response's JSON patch (add and replace of object members, which is all the
// webhook should make) to raw.
func apply(t *testing.T, raw []byte, resp admission.Response) (map[string]any, []patchOp) {
	t.Helper()
	b, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	var ops []patchOp
	if err := json.Unmarshal(b, &ops); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Op != "add" && op.Op != "replace" {
			t.Fatalf("unexpected patch operation %+v", op)
		}
		parts := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		cur := doc
		for i, p := range parts {
			p = strings.NewReplacer("~1", "/", "~0", "~").Replace(p)
			if i == len(parts)-1 {
				cur[p] = op.Value
				break
			}
			next, ok := cur[p].(map[string]any)
			if !ok {
				t.Fatalf("patch path %s: %s is not an object", op.Path, p)
			}
			cur = next
		}
	}
	return doc, ops
}

func field(doc map[string]any, path ...string) any {
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func TestHandle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		op        admissionv1.Operation // CREATE when empty
		pod       *corev1.Pod
		scheduler string // the mutator's SchedulerName
		// wantScheduler is the pod's schedulerName after the patch ("" for no patch);
		// wantOwners the annotation.
		wantScheduler, wantOwners string
		wantReason                string // in the response's message
	}{
		{name: "owned bound claim", pod: pod(nil, "data"), wantScheduler: "stork", wantOwners: "test"},
		{name: "empty schedulerName", pod: pod(func(p *corev1.Pod) { p.Spec.SchedulerName = "" }, "data"),
			wantScheduler: "stork", wantOwners: "test"},
		{name: "other scheduler name configured", pod: pod(nil, "data"), scheduler: "stork-extender",
			wantScheduler: "stork-extender", wantOwners: "test"},
		{name: "unbound claim whose class the driver provisions", pod: pod(nil, "pending"),
			wantScheduler: "stork", wantOwners: "test"},
		{name: "claims of two drivers, an unowned one and a repeat", pod: pod(nil, "data", "beta", "unknown", "data"),
			wantScheduler: "stork", wantOwners: "beta,test"},
		{name: "existing annotations kept", pod: pod(func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "b"} }, "data"),
			wantScheduler: "stork", wantOwners: "test"},
		{name: "opted out", pod: pod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationScheduler: "skip"} }, "data"),
			wantReason: "opted out"},
		{name: "other annotation value does not opt out", pod: pod(func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationScheduler: "yes"} }, "data"),
			wantScheduler: "stork", wantOwners: "test"},
		{name: "another scheduler chosen", pod: pod(func(p *corev1.Pod) { p.Spec.SchedulerName = "my-scheduler" }, "data"),
			wantReason: `scheduler "my-scheduler" was chosen`},
		{name: "already bound to a node", pod: pod(func(p *corev1.Pod) { p.Spec.NodeName = "n1" }, "data"),
			wantReason: "already bound"},
		{name: "no claims", pod: pod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}), wantReason: "no claim"},
		{name: "claim of an unowned driver", pod: pod(nil, "unknown"), wantReason: "no claim"},
		{name: "unbound claim of an unowned class", pod: pod(nil, "pending-unknown"), wantReason: "no claim"},
		{name: "claim not created yet", pod: pod(nil, "missing"), wantReason: "no claim"},
		{name: "generic ephemeral volume ignored", pod: pod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
				VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast")}}}}}}
		}), wantReason: "no claim"},
		{name: "update", op: admissionv1.Update, pod: pod(nil, "data"), wantReason: "not a create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &PodMutator{
				Reader:        fake.NewClientBuilder().WithScheme(scheme()).WithObjects(objects()...).WithIndex(&corev1.PersistentVolume{}, placement.IndexPreboundClaim, placement.PreboundClaim).Build(),
				Drivers:       testDrivers(),
				SchedulerName: tc.scheduler,
				Decoder:       admission.NewDecoder(scheme()),
			}
			op := tc.op
			if op == "" {
				op = admissionv1.Create
			}
			req := request(t, op, tc.pod)
			resp := m.Handle(context.Background(), req)
			if !resp.Allowed {
				t.Fatalf("not allowed: %+v", resp.Result)
			}
			if tc.wantScheduler == "" {
				if len(resp.Patches) != 0 || resp.PatchType != nil {
					t.Fatalf("patched: %+v", resp.Patches)
				}
				if resp.Result == nil || !strings.Contains(resp.Result.Message, tc.wantReason) {
					t.Errorf("reason %+v, want one containing %q", resp.Result, tc.wantReason)
				}
				return
			}
			if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("no JSON patch: %+v", resp)
			}
			doc, _ := apply(t, req.Object.Raw, resp)
			if got := field(doc, "spec", "schedulerName"); got != tc.wantScheduler {
				t.Errorf("schedulerName %v, want %q", got, tc.wantScheduler)
			}
			if got := field(doc, "metadata", "annotations", AnnotationSchedulerSet); got != tc.wantOwners {
				t.Errorf("annotation %s = %v, want %q", AnnotationSchedulerSet, got, tc.wantOwners)
			}
			for k, v := range tc.pod.Annotations {
				if got := field(doc, "metadata", "annotations", k); got != v {
					t.Errorf("annotation %s = %v, want %q kept", k, got, v)
				}
			}
		})
	}
}

func TestCacheErrorNamesTheClaim(t *testing.T) {
	base := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(objects()...).WithIndex(&corev1.PersistentVolume{}, placement.IndexPreboundClaim, placement.PreboundClaim).Build()
	for _, tc := range []struct {
		name string
		fail func(client.Object) bool
		want string
	}{
		{"claim", func(o client.Object) bool { _, ok := o.(*corev1.PersistentVolumeClaim); return ok }, "PersistentVolumeClaim app/data"},
		{"volume", func(o client.Object) bool { _, ok := o.(*corev1.PersistentVolume); return ok }, "PersistentVolume pv-test of PersistentVolumeClaim app/data"},
		{"class", func(o client.Object) bool { _, ok := o.(*storagev1.StorageClass); return ok }, "StorageClass slow of PersistentVolumeClaim app/unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := interceptor.NewClient(base.(client.WithWatch), interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					if tc.fail(obj) {
						return errors.New("cache is not synced")
					}
					return c.Get(ctx, key, obj, opts...)
				},
			})
			m := &PodMutator{Reader: reader, Drivers: testDrivers()}
			resp := m.Handle(context.Background(), request(t, admissionv1.Create, pod(nil, "data", "unknown")))
			if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusInternalServerError {
				t.Fatalf("response %+v, want an error 500", resp.Result)
			}
			if !strings.Contains(resp.Result.Message, tc.want) {
				t.Errorf("message %q, want it to name %q", resp.Result.Message, tc.want)
			}
		})
	}
}

// The patch sets the two fields and nothing else, even when the pod has fields Stork's
// Kubernetes libraries do not know (a decoded and re-encoded Pod would drop them: a "remove").
func TestPatchTouchesOnlyItsFields(t *testing.T) {
	raw := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-0"},` +
		`"spec":{"schedulerName":"default-scheduler","futureField":{"x":1},` +
		`"containers":[{"name":"web","image":"nginx"}],` +
		`"volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"data"}}]}}`
	req := request(t, admissionv1.Create, json.RawMessage(raw))
	m := &PodMutator{Reader: fake.NewClientBuilder().WithScheme(scheme()).WithObjects(objects()...).WithIndex(&corev1.PersistentVolume{}, placement.IndexPreboundClaim, placement.PreboundClaim).Build(), Drivers: testDrivers()}
	resp := m.Handle(context.Background(), req)
	_, ops := apply(t, req.Object.Raw, resp)
	if len(ops) != 2 {
		t.Fatalf("patch %+v, want 2 operations", ops)
	}
	paths := []string{ops[0].Path, ops[1].Path}
	if !strings.Contains(strings.Join(paths, " "), "/spec/schedulerName") || !strings.Contains(strings.Join(paths, " "), "/metadata/annotations") {
		t.Errorf("patch paths %v", paths)
	}
}

// Register serves the mutator at Path; a full AdmissionReview round trip.
func TestRegister(t *testing.T) {
	srv := webhook.NewServer(webhook.Options{})
	Register(srv, &PodMutator{Reader: fake.NewClientBuilder().WithScheme(scheme()).WithObjects(objects()...).WithIndex(&corev1.PersistentVolume{}, placement.IndexPreboundClaim, placement.PreboundClaim).Build(), Drivers: testDrivers()})
	req := request(t, admissionv1.Create, pod(nil, "data"))
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	hr := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.WebhookMux().ServeHTTP(rec, hr)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || !out.Response.Allowed || out.Response.UID != "uid-1" || len(out.Response.Patch) == 0 {
		t.Fatalf("response %+v, want allowed with a patch", out.Response)
	}
	if !bytes.Contains(out.Response.Patch, []byte(`"stork"`)) {
		t.Errorf("patch %s does not set the scheduler", out.Response.Patch)
	}
}
