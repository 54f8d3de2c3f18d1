package locator

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
)

func TestResolve(t *testing.T) {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	secret := func(name string, data map[string]string) *corev1.Secret {
		d := map[string][]byte{}
		for k, v := range data {
			d[k] = []byte(v)
		}
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name}, Data: d}
	}
	key := secret("key", map[string]string{"passphrase": "a long passphrase"})
	location := func(url, creds, keyName string) *storkv1.BackupLocation {
		loc := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc"},
			Spec: storkv1.BackupLocationSpec{URL: url, EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: keyName, Key: "passphrase"}}}
		if creds != "" {
			loc.Spec.CredentialsSecretRef = &storkv1.SecretReference{Name: creds}
		}
		return loc
	}
	tests := []struct {
		name    string
		loc     *storkv1.BackupLocation
		secrets []*corev1.Secret
		want    string // "" for success; else a part of the Unavailable message
	}{
		{"file:// needs only the key", location("file:///backups", "", "key"), []*corev1.Secret{key}, ""},
		{"s3 with credentials", location("s3://b", "creds", "key"),
			[]*corev1.Secret{key, secret("creds", map[string]string{"accessKeyID": "id", "secretAccessKey": "secret"})}, ""},
		{"s3 without credentials", location("s3://b", "", "key"), []*corev1.Secret{key}, "spec.credentialsSecretRef is required"},
		{"credentials Secret missing", location("s3://b", "creds", "key"), []*corev1.Secret{key}, "spec.credentialsSecretRef: Secret app/creds does not exist"},
		{"credentials incomplete", location("s3://b", "creds", "key"),
			[]*corev1.Secret{key, secret("creds", map[string]string{"accessKeyID": "id"})}, "has no secretAccessKey"},
		{"key Secret missing", location("file:///backups", "", "nokey"), nil, "spec.encryptionKeySecretRef: Secret app/nokey does not exist"},
		{"key missing in its Secret", location("file:///backups", "", "key"), []*corev1.Secret{secret("key", map[string]string{"other": "x"})}, "has no key passphrase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(s)
			for _, sec := range tt.secrets {
				b = b.WithObjects(sec)
			}
			a, err := Resolve(context.Background(), b.Build(), tt.loc)
			if tt.want == "" {
				if err != nil || a.Store.URL != tt.loc.Spec.URL || a.Key.Passphrase != "a long passphrase" {
					t.Fatalf("Resolve: %+v, %v", a.Store.URL, err)
				}
				return
			}
			var u *Unavailable
			if !errors.As(err, &u) || u.Reason != ReasonSecretMissing || !strings.Contains(u.Message, tt.want) {
				t.Fatalf("error %v, want Unavailable %s containing %q", err, ReasonSecretMissing, tt.want)
			}
			if strings.Contains(u.Message, "a long passphrase") {
				t.Fatalf("message shows a secret: %s", u.Message)
			}
		})
	}
}
