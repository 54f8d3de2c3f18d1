package resources

import (
	storkv1 "stork.dev/stork/api/v1alpha1"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// isClusterAnnotation says whether an annotation is one a controller of the source cluster set
// about that cluster's state: the volume a claim was bound to (pv.kubernetes.io/bind-completed,
// bound-by-controller, ...), the node it was scheduled on, its provisioner, a Deployment's
// revision count, or the restore that created the object there.
func isClusterAnnotation(key string) bool {
	switch key {
	case "volume.kubernetes.io/selected-node",
		"volume.kubernetes.io/storage-provisioner",
		"volume.beta.kubernetes.io/storage-provisioner",
		"deployment.kubernetes.io/revision",
		storkv1.AnnotationRestoredBy: // a restore into the target sets its own
		return true
	}
	return strings.HasPrefix(key, "pv.kubernetes.io/")
}

// Strip removes cluster-specific fields from obj in place, so that it can be created in another
// cluster (or again in the same one): the metadata the API server assigned, status, annotations
// about the source cluster's state, and per kind the fields that name source-cluster resources
// (bound volumes, cluster IPs, node ports, nodes, generated Job selectors).
func Strip(obj *unstructured.Unstructured) {
	for _, f := range []string{
		"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
		"deletionGracePeriodSeconds", "managedFields", "selfLink",
		// Owners are objects of the source cluster (their UIDs mean nothing in the target),
		// and finalizers belong to controllers, which add their own.
		"ownerReferences", "finalizers",
	} {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	delete(obj.Object, "status")
	stripAnnotations(obj)

	switch obj.GetKind() {
	case "PersistentVolumeClaim":
		// The target cluster binds the claim to a volume of its own.
		unstructured.RemoveNestedField(obj.Object, "spec", "volumeName")
		// A claim provisioned from a snapshot names a VolumeSnapshot of the source cluster;
		// the restore provides the data itself.
		for _, f := range []string{"dataSource", "dataSourceRef"} {
			if k, _, _ := unstructured.NestedString(obj.Object, "spec", f, "kind"); k == "VolumeSnapshot" {
				unstructured.RemoveNestedField(obj.Object, "spec", f)
			}
		}
	case "Service":
		// Cluster IPs come from the source cluster's service range; a headless Service's
		// "None" is the user's choice and must stay.
		if ip, _, _ := unstructured.NestedString(obj.Object, "spec", "clusterIP"); ip != "None" {
			unstructured.RemoveNestedField(obj.Object, "spec", "clusterIP")
			unstructured.RemoveNestedField(obj.Object, "spec", "clusterIPs")
		}
		unstructured.RemoveNestedField(obj.Object, "spec", "healthCheckNodePort")
		stripNodePorts(obj)
	case "Job":
		// The selector and these labels carry the source Job's UID; the API server generates
		// new ones, and refuses a selector that does not match them.
		unstructured.RemoveNestedField(obj.Object, "spec", "selector")
		unstructured.RemoveNestedField(obj.Object, "spec", "manualSelector")
		for _, l := range []string{"controller-uid", "batch.kubernetes.io/controller-uid"} {
			unstructured.RemoveNestedField(obj.Object, "spec", "template", "metadata", "labels", l)
		}
	}
	// A node name pins pods to a node of the source cluster.
	if p := podSpecPath(obj.GetKind()); p != nil {
		unstructured.RemoveNestedField(obj.Object, append(p, "nodeName")...)
	}
}

func stripAnnotations(obj *unstructured.Unstructured) {
	a := obj.GetAnnotations()
	if len(a) == 0 {
		return
	}
	for k := range a {
		if isClusterAnnotation(k) {
			delete(a, k)
		}
	}
	if len(a) == 0 {
		a = nil // SetAnnotations(nil) removes the field rather than leaving "{}"
	}
	obj.SetAnnotations(a)
}

// stripNodePorts removes spec.ports[].nodePort: node ports are allocated per cluster, and one
// taken in the target would make the Service invalid.
func stripNodePorts(obj *unstructured.Unstructured) {
	ports, found, err := unstructured.NestedSlice(obj.Object, "spec", "ports")
	if !found || err != nil {
		return
	}
	for _, p := range ports {
		if m, ok := p.(map[string]any); ok {
			delete(m, "nodePort")
		}
	}
	_ = unstructured.SetNestedSlice(obj.Object, ports, "spec", "ports")
}
