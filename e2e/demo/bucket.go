package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/harness"
)

// bucket is where both sites keep their backups: a directory on this machine (file://), or a
// MinIO bucket when site B runs on a real node, whose pods see none of this machine's
// directories.
type bucket struct {
	url string
	s3  *storkv1.S3Options
	// creds are the store's keys (accessKeyID, secretAccessKey), empty for file://.
	creds map[string]string
}

func fileBucket(env *harness.Env) (bucket, error) {
	dir := filepath.Join(env.Root, "bucket")
	return bucket{url: "file://" + dir}, os.MkdirAll(dir, 0o700)
}

// minioBucket starts MinIO on this machine's address, which pods on real nodes reach.
func minioBucket(ctx context.Context, env *harness.Env) (bucket, error) {
	ip, err := harness.HostAddress()
	if err != nil {
		return bucket{}, err
	}
	m, err := env.StartMinIOAt(ctx, "minio", ip.String())
	if err != nil {
		return bucket{}, err
	}
	return bucket{url: "s3://" + m.Bucket + "/demo", s3: &storkv1.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
		creds: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": m.SecretKey}}, nil
}

// storkctlArgs are storkctl's flags for the bucket; credentials go into files under dir.
func (b bucket) storkctlArgs(dir string) ([]string, error) {
	args := []string{"--location", b.url}
	if b.s3 == nil {
		return args, nil
	}
	creds := filepath.Join(dir, "credentials")
	if err := os.MkdirAll(creds, 0o700); err != nil {
		return nil, err
	}
	for k, v := range b.creds {
		if err := os.WriteFile(filepath.Join(creds, k), []byte(v), 0o600); err != nil {
			return nil, err
		}
	}
	return append(args, "--s3-endpoint", b.s3.Endpoint, "--s3-region", b.s3.Region, "--s3-path-style", "--credentials-dir", creds), nil
}

// createLocation makes namespace ns, the encryption-key Secret, the credentials Secret if the
// bucket has keys, and a BackupLocation named backups in it.
func createLocation(ctx context.Context, c client.Client, ns string, b bucket, passphrase string, mode storkv1.BackupLocationAccessMode) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace: %w", err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stork-demo-key"},
		StringData: map[string]string{"passphrase": passphrase},
	}
	if err := c.Create(ctx, secret); err != nil {
		return fmt.Errorf("creating the encryption key Secret: %w", err)
	}
	loc := &storkv1.BackupLocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backups"},
		Spec: storkv1.BackupLocationSpec{
			URL:                    b.url,
			S3:                     b.s3,
			EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: secret.Name, Key: "passphrase"},
			Default:                true,
			AccessMode:             mode,
			SyncPeriod:             &metav1.Duration{Duration: 10 * time.Second},
		},
	}
	if len(b.creds) > 0 {
		creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stork-demo-bucket"}, StringData: b.creds}
		if err := c.Create(ctx, creds); err != nil {
			return fmt.Errorf("creating the bucket's credentials Secret: %w", err)
		}
		loc.Spec.CredentialsSecretRef = &storkv1.SecretReference{Name: creds.Name}
	}
	if err := c.Create(ctx, loc); err != nil {
		return fmt.Errorf("creating BackupLocation: %w", err)
	}
	return nil
}
