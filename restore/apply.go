package restore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"stork.dev/stork/backup/engine/resources"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

// Results of Apply: the values of the API's ObjectResult.Result.
const (
	Created = "Created"
	Updated = "Updated"
	Skipped = "Skipped"
	Failed  = "Failed"
)

// FieldManager is the field manager of what Apply creates and updates.
const FieldManager = "stork-restore"

// Apply makes one prepared object exist in the target cluster according to policy and returns
// one of Created, Updated, Skipped or Failed, with a message for a person ("" for Created).
//
// restoredBy (the Restore's UID) is recorded in the annotation stork.dev/restored-by of what
// Apply creates. An existing object carrying that same value was created by an earlier attempt
// of the same restore and counts as Created, so that a controller restarted midway can call
// Apply again for every object. Any other existing object is, by policy:
//
//   - Fail (or ""): Failed, with a message saying how to proceed;
//   - Skip: Skipped, left as it is;
//   - Update: Updated by server-side apply (field manager "stork-restore", forced), so the fields
//     the backup sets are replaced and those it does not set, such as the clusterIP the target
//     cluster assigned to a Service, stay. Apply merges: map keys and keyed list entries
//     (a Service's ports, a container's env) that only the existing object has stay too.
//
// An existing Namespace is always Skipped: namespaces are shared, and the objects are restored
// into it. An existing object that is being deleted is Failed whatever the policy.
//
// API errors that retrying will not cure (invalid, forbidden, already exists after a race,
// immutable fields, kinds the cluster does not serve) are returned as Failed with the API's
// message; transient ones (timeouts, conflicts, throttling, server errors, a cancelled context)
// as err, with the result "", so that the caller retries.
func Apply(ctx context.Context, c client.Client, obj *unstructured.Unstructured, policy storkv1.ExistingObjectPolicy, restoredBy string) (result, message string, err error) {
	name := resources.Describe(obj)
	if _, ok := resources.KindOf(obj); !ok {
		return Failed, fmt.Sprintf("kind %s %q is not one Stork restores", obj.GetAPIVersion(), obj.GetKind()), nil
	}

	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(obj.GroupVersionKind())
	err = c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	switch {
	case apierrors.IsNotFound(err):
		return create(ctx, c, obj, restoredBy)
	case err != nil:
		return apiFailure("reading "+name, err)
	}

	switch {
	case existing.GetDeletionTimestamp() != nil:
		// Whoever created it, it will not be there for long.
		return Failed, fmt.Sprintf("%s exists and is being deleted; restore again once it is gone", name), nil
	case restoredBy != "" && existing.GetAnnotations()[storkv1.AnnotationRestoredBy] == restoredBy:
		// Created by an earlier attempt of this restore, from this same object.
		return Created, "", nil
	case obj.GetKind() == "Namespace":
		return Skipped, fmt.Sprintf("%s exists; namespaces are shared, objects are restored into it as it is", name), nil
	}

	switch policy {
	case storkv1.ExistingFail, "":
		return Failed, fmt.Sprintf("%s already exists; set existingObjectPolicy to Skip or Update, "+
			"or restore into another namespace with namespaceMapping", name), nil
	case storkv1.ExistingSkip:
		return Skipped, fmt.Sprintf("%s already exists; existingObjectPolicy is Skip", name), nil
	case storkv1.ExistingUpdate:
		return update(ctx, c, obj)
	default:
		return Failed, fmt.Sprintf("%s already exists and existingObjectPolicy %q is none of Fail, Skip, Update", name, policy), nil
	}
}

func create(ctx context.Context, c client.Client, obj *unstructured.Unstructured, restoredBy string) (string, string, error) {
	o := forAPI(obj)
	if restoredBy != "" {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[storkv1.AnnotationRestoredBy] = restoredBy
		o.SetAnnotations(a)
	}
	if err := c.Create(ctx, o, client.FieldOwner(FieldManager)); err != nil {
		// AlreadyExists here means someone created it since the Get: that is not this
		// restore's object, and it is not retried.
		return apiFailure("creating "+resources.Describe(obj), err)
	}
	return Created, "", nil
}

func update(ctx context.Context, c client.Client, obj *unstructured.Unstructured) (string, string, error) {
	// The object was not created by this restore: it does not get the restored-by annotation,
	// which would make a later attempt count it as Created.
	o := forAPI(obj)
	unstructured.RemoveNestedField(o.Object, "metadata", "annotations", storkv1.AnnotationRestoredBy)
	err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(FieldManager), client.ForceOwnership)
	if err != nil {
		return apiFailure("updating "+resources.Describe(obj), err)
	}
	return Updated, "", nil
}

// forAPI returns a copy of obj without the fields that would make the API server refuse a
// create or turn an apply into a precondition, in case obj was not resources.Stripped.
func forAPI(obj *unstructured.Unstructured) *unstructured.Unstructured {
	o := obj.DeepCopy()
	o.SetResourceVersion("")
	o.SetUID("")
	o.SetManagedFields(nil)
	return o
}

// apiFailure turns an error of a call doing what into Failed with the API's message when
// retrying cannot help, or into a wrapped error for the caller to retry.
func apiFailure(doing string, err error) (string, string, error) {
	if permanent(err) {
		return Failed, err.Error(), nil
	}
	return "", "", fmt.Errorf("%s: %w", doing, err)
}

// permanent says whether an API error will come back unchanged if the call is retried.
func permanent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// The target cluster does not serve the kind (or the client does not know it).
	if meta.IsNoMatchError(err) || runtime.IsNotRegisteredError(err) {
		return true
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return false // not an answer of the API server: the connection, most likely
	}
	switch {
	case apierrors.IsConflict(err), // optimistic concurrency: someone else wrote first
		apierrors.IsTooManyRequests(err),
		apierrors.IsTimeout(err),
		apierrors.IsServerTimeout(err),
		apierrors.IsUnauthorized(err): // the controller's credentials, not the object
		return false
	}
	// Other client errors are about the request itself: Invalid (immutable fields included),
	// Forbidden (RBAC, admission, a terminating namespace), AlreadyExists, NotFound (a missing
	// namespace), BadRequest, ... Server errors (5xx) are transient.
	code := st.Status().Code
	return code >= http.StatusBadRequest && code < http.StatusInternalServerError
}
