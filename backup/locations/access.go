package locations

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/objstore"
	"stork.dev/stork/backup/repo"
)

// Access is what it takes to open a location's repository.
type Access struct {
	Store objstore.Config
	Key   repo.UserKey
}

// Resolve reads a location's Secrets (by name, through secrets) into an Access; a problem is an
// error whose message names the field.
func Resolve(ctx context.Context, secrets client.Reader, loc *storkv1.BackupLocation) (Access, error) {
	r := &Reconciler{Secrets: secrets}
	cfg, key, err := r.config(ctx, loc)
	return Access{Store: cfg, Key: key}, err
}

// Keys of an access Secret (see AccessSecretData).
const (
	keyURL          = "url"
	keyEndpoint     = "s3Endpoint"
	keyRegion       = "s3Region"
	keyPathStyle    = "s3ForcePathStyle"
	keyAccessKeyID  = "accessKeyID"
	keySecretKey    = "secretAccessKey"
	keySessionToken = "sessionToken"
	keyGCS          = "serviceAccount.json"
	keyAzureAccount = "accountName"
	keyAzureKey     = "accountKey"
	keyPassphrase   = "passphrase"
	keyRawKey       = "rawKey"
)

// AccessSecretData is the content of the Secret an agent reads to reach a location for one task:
// everything in one place, in Stork's namespace, so that agents never read the application's
// Secrets.
func AccessSecretData(a Access) map[string][]byte {
	c := a.Store.Credentials
	d := map[string][]byte{
		keyURL: []byte(a.Store.URL), keyEndpoint: []byte(a.Store.S3.Endpoint), keyRegion: []byte(a.Store.S3.Region),
		keyPathStyle:   []byte(strconv.FormatBool(a.Store.S3.ForcePathStyle)),
		keyAccessKeyID: []byte(c.AccessKeyID), keySecretKey: []byte(c.SecretAccessKey), keySessionToken: []byte(c.SessionToken),
		keyGCS: c.GCSServiceAccountJSON, keyAzureAccount: []byte(c.AzureAccountName), keyAzureKey: []byte(c.AzureAccountKey),
		keyPassphrase: []byte(a.Key.Passphrase),
	}
	if len(a.Key.Raw) > 0 {
		d[keyRawKey] = a.Key.Raw
	}
	return d
}

// ParseAccessSecret reads an access Secret's data back.
func ParseAccessSecret(d map[string][]byte) (Access, error) {
	if len(d[keyURL]) == 0 {
		return Access{}, fmt.Errorf("the access Secret has no %s", keyURL)
	}
	pathStyle, _ := strconv.ParseBool(string(d[keyPathStyle]))
	a := Access{
		Store: objstore.Config{URL: string(d[keyURL]),
			S3: objstore.S3Options{Endpoint: string(d[keyEndpoint]), Region: string(d[keyRegion]), ForcePathStyle: pathStyle},
			Credentials: objstore.Credentials{AccessKeyID: string(d[keyAccessKeyID]), SecretAccessKey: string(d[keySecretKey]),
				SessionToken: string(d[keySessionToken]), GCSServiceAccountJSON: d[keyGCS],
				AzureAccountName: string(d[keyAzureAccount]), AzureAccountKey: string(d[keyAzureKey])}},
		Key: repo.UserKey{Passphrase: string(d[keyPassphrase]), Raw: d[keyRawKey]},
	}
	return a, a.Key.Validate()
}

// LabelAccessFor on an access Secret names the namespace whose VolumeTasks may use it: an agent
// refuses a task that names the access Secret of another namespace's Backup or Restore.
const LabelAccessFor = "stork.dev/access-for-namespace"

// EnsureAccessSecret makes the access Secret ns/name for a location unless it exists: the
// Secret that the VolumeTasks of a Backup or Restore in namespace forNS name, so that agents
// reach the location without reading the Secrets of the location's namespace. The caller
// deletes it when its work is done (DeleteAccessSecret).
func EnsureAccessSecret(ctx context.Context, c client.Client, secrets client.Reader, ns, name, forNS string, labels map[string]string, loc *storkv1.BackupLocation) error {
	err := secrets.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	access, err := Resolve(ctx, secrets, loc)
	if err != nil {
		return fmt.Errorf("reading the Secrets of BackupLocation %s/%s: %w", loc.Namespace, loc.Name, err)
	}
	all := map[string]string{LabelAccessFor: forNS}
	for k, v := range labels {
		all[k] = v
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: all},
		Data:       AccessSecretData(access),
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
func Waiting(loc *storkv1.BackupLocation) string {
	msg := "waiting for BackupLocation " + loc.Name + " to be Available"
	if c := meta.FindStatusCondition(loc.Status.Conditions, storkv1.ConditionAvailable); c != nil {
		msg += " (" + c.Reason + ": " + c.Message + ")"
	}
	return msg
}
