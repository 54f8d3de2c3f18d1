package controllers

import (
	"context"
	"fmt"
	"stork.dev/stork/backup/engine/resources"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// listPageSize bounds one List response, so that a namespace with many large Secrets or
// ConfigMaps is read in several moderate responses rather than one huge one.
const listPageSize = 500

// Collect reads the objects to back up from namespace ns: the Namespace object itself and every
// object of the namespaced resources.Kinds, filtered by sel (nil: everything). Reads with the given reader
// (the controller passes an uncached API reader: unstructured lists with the GVK set).
// It leaves out what the target cluster makes by itself: objects with a controller
// ownerReference (their owner recreates them), objects being deleted, Secrets of type
// kubernetes.io/service-account-token, the ServiceAccount "default", the ConfigMap
// "kube-root-ca.crt". The Namespace object is always included, whatever sel says.
// Returned objects are already resources.Stripped and sorted (restore order, then name).
func Collect(ctx context.Context, c client.Reader, ns string, sel labels.Selector) ([]*unstructured.Unstructured, error) {
	nsObj := &unstructured.Unstructured{}
	nsObj.SetGroupVersionKind(resources.Kinds[0].GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
		return nil, fmt.Errorf("reading Namespace %s: %w", ns, err)
	}
	// The namespace is needed whatever sel says: a restore creates it before anything else.
	resources.Strip(nsObj)
	objs := []*unstructured.Unstructured{nsObj}

	for _, k := range resources.Kinds {
		if !k.Namespaced {
			continue
		}
		opts := []client.ListOption{client.InNamespace(ns), client.Limit(listPageSize)}
		if sel != nil {
			opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
		}
		for cont := ""; ; {
			list := &unstructured.UnstructuredList{}
			gvk := k.GroupVersionKind()
			list.SetGroupVersionKind(gvk.GroupVersion().WithKind(k.Kind + "List"))
			if err := c.List(ctx, list, append(opts, client.Continue(cont))...); err != nil {
				return nil, fmt.Errorf("listing %s in namespace %s: %w", k.Resource, ns, err)
			}
			for i := range list.Items {
				obj := &list.Items[i]
				// List items from the API server carry no kind; the list's is theirs.
				obj.SetGroupVersionKind(gvk)
				if leftOut(obj) {
					continue
				}
				resources.Strip(obj)
				objs = append(objs, obj)
			}
			if cont = list.GetContinue(); cont == "" {
				break
			}
		}
	}
	resources.Sort(objs)
	return objs, nil
}

// leftOut says whether obj is something the target cluster makes by itself, or something on its
// way out, and so is not backed up.
func leftOut(obj *unstructured.Unstructured) bool {
	if obj.GetDeletionTimestamp() != nil {
		return true
	}
	// Its controller (a Deployment for a ReplicaSet, a CronJob for a Job, ...) recreates it.
	if metav1.GetControllerOfNoCopy(obj) != nil {
		return true
	}
	switch obj.GetKind() {
	case "Secret":
		// Token secrets are minted by the target cluster for its own ServiceAccounts.
		t, _, _ := unstructured.NestedString(obj.Object, "type")
		return t == "kubernetes.io/service-account-token"
	case "ServiceAccount":
		return obj.GetName() == "default" // created in every namespace
	case "ConfigMap":
		return obj.GetName() == "kube-root-ca.crt" // published in every namespace, with that cluster's CA
	}
	return false
}
