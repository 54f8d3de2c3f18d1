package locator

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
)

// EnsureAccessSecret makes the access Secret ns/name for a location unless it exists: the
// Secret that the VolumeTasks of a Backup or Restore in namespace forNS name, so that agents
// reach the location without reading the Secrets of the location's namespace. The caller
// deletes it when its work is done (DeleteAccessSecret).
func EnsureAccessSecret(ctx context.Context, c client.Client, secrets client.Reader, ns, name, forNS string, labels map[string]string, loc *storkv1.BackupLocation) error {
	err := secrets.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	a, err := Resolve(ctx, secrets, loc)
	if err != nil {
		return fmt.Errorf("reading the Secrets of BackupLocation %s/%s: %w", loc.Namespace, loc.Name, err)
	}
	all := map[string]string{access.LabelFor: forNS}
	for k, v := range labels {
		all[k] = v
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: all},
		Data:       access.SecretData(a),
		Type:       corev1.SecretTypeOpaque,
	}
	if err := c.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating access Secret %s/%s: %w", ns, name, err)
	}
	return nil
}

// AccessSecretName is the name of the access Secret made for the Backup or Restore with this UID.
func AccessSecretName(uid types.UID) string { return "stork-access-" + string(uid) }

// DeleteAccessSecret deletes an access Secret; one already gone is fine.
func DeleteAccessSecret(ctx context.Context, c client.Client, ns, name string) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	return client.IgnoreNotFound(c.Delete(ctx, s))
}

// Waiting says, for the status of work waiting on a location, that it waits and why.
// Readable says whether restores may read loc: it is Available, or only its writes are refused.
func Readable(loc *storkv1.BackupLocation) bool {
	return loc.Status.Phase == storkv1.BackupLocationAvailable || meta.IsStatusConditionTrue(loc.Status.Conditions, storkv1.ConditionReadable)
}

func Waiting(loc *storkv1.BackupLocation) string {
	msg := "waiting for BackupLocation " + loc.Name + " to be Available"
	if c := meta.FindStatusCondition(loc.Status.Conditions, storkv1.ConditionAvailable); c != nil {
		msg += " (" + c.Reason + ": " + c.Message + ")"
	}
	return msg
}
