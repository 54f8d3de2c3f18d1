package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"stork.dev/stork/drivers"
	"stork.dev/stork/placement"
)

const (
	// Path is where the webhook is served.
	Path = "/mutate-pods"
	// AnnotationScheduler set to SchedulerSkip on a pod keeps the webhook away from it.
	AnnotationScheduler = "stork.dev/scheduler"
	// SchedulerSkip is the value of AnnotationScheduler that opts a pod out.
	SchedulerSkip = "skip"
	// AnnotationSchedulerSet is what the webhook adds to a pod it sends to Stork: the names of
	// the drivers that own its claims, comma-separated.
	AnnotationSchedulerSet = "stork.dev/scheduler-set"
	// DefaultSchedulerName is the scheduler pods are sent to when PodMutator.SchedulerName is
	// empty.
	DefaultSchedulerName = "stork"
)

// defaultDecoder decodes pods when PodMutator.Decoder is nil.
var defaultDecoder = func() admission.Decoder {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	return admission.NewDecoder(s)
}()

// PodMutator sends pods whose claims a Stork driver owns to Stork's scheduler. See the package
// documentation.
type PodMutator struct {
	// Reader reads claims, volumes and storage classes: the manager's cache.
	Reader client.Reader
	// Drivers decide which claims Stork owns.
	Drivers *drivers.Set
	// SchedulerName is the scheduler pods are sent to: DefaultSchedulerName when empty.
	SchedulerName string
	// Decoder decodes the pods of admission requests (admission.NewDecoder of the manager's
	// scheme): one for a scheme of core/v1 when nil.
	Decoder admission.Decoder
	// Log is the webhook's logger.
	Log logr.Logger
}

var _ admission.Handler = (*PodMutator)(nil)

// Register serves m at Path on srv.
func Register(srv webhook.Server, m *PodMutator) {
	srv.Register(Path, &admission.Webhook{Handler: m})
}

// Handle answers an admission request for a pod: allowed always, with a patch setting the
// scheduler when a driver owns one of the pod's claims, or an error when the cache cannot be
// read (which the Ignore failure policy turns into an unpatched pod).
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("not a create")
	}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("not a pod")
	}
	decoder := m.Decoder
	if decoder == nil {
		decoder = defaultDecoder
	}
	pod := &corev1.Pod{}
	if err := decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err))
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	log := m.Log.WithValues("pod", podName(ns, pod))

	if pod.Annotations[AnnotationScheduler] == SchedulerSkip {
		return admission.Allowed(fmt.Sprintf("opted out by annotation %s: %s", AnnotationScheduler, SchedulerSkip))
	}
	if s := pod.Spec.SchedulerName; s != "" && s != corev1.DefaultSchedulerName {
		return admission.Allowed(fmt.Sprintf("scheduler %q was chosen for the pod", s))
	}
	if pod.Spec.NodeName != "" {
		return admission.Allowed("the pod is already bound to a node")
	}
	owners, err := m.owners(ctx, ns, pod)
	if err != nil {
		log.Error(err, "deciding whether Stork schedules the pod")
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if len(owners) == 0 {
		return admission.Allowed("no claim of the pod is owned by a Stork driver")
	}

	scheduler := m.SchedulerName
	if scheduler == "" {
		scheduler = DefaultSchedulerName
	}
	patched, err := setScheduler(req.Object.Raw, scheduler, strings.Join(owners, ","))
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("patching the pod: %w", err))
	}
	resp := admission.PatchResponseFromRaw(req.Object.Raw, patched)
	if resp.Allowed {
		msg := fmt.Sprintf("scheduler set to %q: claims owned by %s", scheduler, strings.Join(owners, ", "))
		resp.Result = &metav1.Status{Message: msg}
		log.V(1).Info("sending the pod to Stork's scheduler", "scheduler", scheduler, "drivers", owners)
	}
	return resp
}

// owners are the names of the drivers that own the pod's claims, sorted, without repeats.
func (m *PodMutator) owners(ctx context.Context, ns string, pod *corev1.Pod) ([]string, error) {
	if m.Drivers == nil {
		return nil, nil
	}
	vols := &placement.Volumes{Reader: m.Reader, Drivers: m.Drivers}
	var owners, seen []string
	for _, vol := range pod.Spec.Volumes {
		// Generic ephemeral volumes are ignored: their claims are made after the pod.
		if vol.PersistentVolumeClaim == nil || slices.Contains(seen, vol.PersistentVolumeClaim.ClaimName) {
			continue
		}
		seen = append(seen, vol.PersistentVolumeClaim.ClaimName)
		v, err := vols.Volume(ctx, ns, vol.PersistentVolumeClaim.ClaimName)
		if err != nil {
			return nil, err
		}
		if v.Claim == nil {
			continue // the claim does not exist yet: not ours to judge
		}
		if d, err := m.Drivers.For(v); err == nil && !slices.Contains(owners, d.Name()) {
			owners = append(owners, d.Name())
		}
	}
	slices.Sort(owners)
	return owners, nil
}

// setScheduler returns the pod JSON with spec.schedulerName and the AnnotationSchedulerSet
// annotation set. It edits the JSON as sent, numbers and unknown fields untouched.
func setScheduler(raw []byte, scheduler, owners string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	spec, err := object(obj, "spec")
	if err != nil {
		return nil, err
	}
	spec["schedulerName"] = scheduler
	meta, err := object(obj, "metadata")
	if err != nil {
		return nil, err
	}
	ann, err := object(meta, "annotations")
	if err != nil {
		return nil, err
	}
	ann[AnnotationSchedulerSet] = owners
	return json.Marshal(obj)
}

// object returns the object at key in parent, adding an empty one when it is missing or null.
func object(parent map[string]any, key string) (map[string]any, error) {
	switch v := parent[key].(type) {
	case map[string]any:
		return v, nil
	case nil:
		o := map[string]any{}
		parent[key] = o
		return o, nil
	default:
		return nil, fmt.Errorf("%s is a %T, not an object", key, v)
	}
}

func podName(ns string, pod *corev1.Pod) string {
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "*"
	}
	return ns + "/" + name
}
