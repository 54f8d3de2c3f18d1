package locator

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// ReasonSecretMissing is the reason of an Unavailable location whose Secrets are missing or
// incomplete.
const ReasonSecretMissing = "SecretMissing"

// Unavailable is why a location cannot be used: a reason for its Available condition and a
// message a person can act on (it names the field and the Secret, never a secret value).
type Unavailable struct {
	Reason, Message string
	// Readable: only writes are refused; the repository can be read.
	Readable bool
}

func (u *Unavailable) Error() string { return u.Message }

// Resolve reads a location's Secrets (by name, through secrets) into an Access; a problem is an
// *Unavailable error whose message names the field.
func Resolve(ctx context.Context, secrets client.Reader, loc *storkv1.BackupLocation) (access.Access, error) {
	cfg, key, err := config(ctx, secrets, loc)
	return access.Access{Store: cfg, Key: key}, err
}

// config builds the store configuration and repository key from the location and its Secrets.
func config(ctx context.Context, secrets client.Reader, loc *storkv1.BackupLocation) (objstore.Config, repo.UserKey, error) {
	cfg := objstore.Config{URL: loc.Spec.URL}
	if s3 := loc.Spec.S3; s3 != nil {
		cfg.S3 = objstore.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, ForcePathStyle: s3.ForcePathStyle}
		// The location controller works out the retention (status); until it has, the spec's.
		if v := loc.Status.ObjectLockRetention; v != nil {
			cfg.S3.ObjectLockRetention = v.Duration
		} else if v := s3.ObjectLockRetention; v != nil {
			cfg.S3.ObjectLockRetention = v.Duration
		}
	}
	scheme := ""
	if u, err := url.Parse(loc.Spec.URL); err == nil {
		scheme = u.Scheme
	}
	if ref := loc.Spec.CredentialsSecretRef; ref != nil {
		data, err := secret(ctx, secrets, "spec.credentialsSecretRef", loc.Namespace, ref.Name)
		if err != nil {
			return cfg, repo.UserKey{}, err
		}
		need := map[string][]string{"s3": {"accessKeyID", "secretAccessKey"}, "gs": {"serviceAccount.json"}, "azblob": {"accountName", "accountKey"}}[scheme]
		var missing []string
		for _, k := range need {
			if len(data[k]) == 0 {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return cfg, repo.UserKey{}, &Unavailable{Reason: ReasonSecretMissing, Message: fmt.Sprintf("spec.credentialsSecretRef: Secret %s/%s has no %s (a %s:// location needs %s)",
				loc.Namespace, ref.Name, strings.Join(missing, ", "), scheme, strings.Join(need, " and "))}
		}
		cfg.Credentials = objstore.Credentials{AccessKeyID: string(data["accessKeyID"]), SecretAccessKey: string(data["secretAccessKey"]),
			SessionToken: string(data["sessionToken"]), GCSServiceAccountJSON: data["serviceAccount.json"],
			AzureAccountName: string(data["accountName"]), AzureAccountKey: string(data["accountKey"])}
	} else if scheme != "file" {
		return cfg, repo.UserKey{}, &Unavailable{Reason: ReasonSecretMissing, Message: "spec.credentialsSecretRef is required for a " + scheme + ":// location: Stork never uses the environment's credentials"}
	}
	ref := loc.Spec.EncryptionKeySecretRef
	data, err := secret(ctx, secrets, "spec.encryptionKeySecretRef", loc.Namespace, ref.Name)
	if err != nil {
		return cfg, repo.UserKey{}, err
	}
	if len(data[ref.Key]) == 0 {
		return cfg, repo.UserKey{}, &Unavailable{Reason: ReasonSecretMissing, Message: fmt.Sprintf("spec.encryptionKeySecretRef: Secret %s/%s has no key %s", loc.Namespace, ref.Name, ref.Key)}
	}
	key := repo.UserKey{Passphrase: string(data[ref.Key])}
	if err := key.Validate(); err != nil {
		return cfg, repo.UserKey{}, &Unavailable{Reason: ReasonSecretMissing, Message: fmt.Sprintf("spec.encryptionKeySecretRef: Secret %s/%s key %s: %v", loc.Namespace, ref.Name, ref.Key, err)}
	}
	return cfg, key, nil
}

func secret(ctx context.Context, secrets client.Reader, field, ns, name string) (map[string][]byte, error) {
	s := &corev1.Secret{}
	err := secrets.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s)
	if apierrors.IsNotFound(err) {
		return nil, &Unavailable{Reason: ReasonSecretMissing, Message: fmt.Sprintf("%s: Secret %s/%s does not exist", field, ns, name)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
	}
	return s.Data, nil
}
