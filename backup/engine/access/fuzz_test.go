package access

import (
	"reflect"
	"testing"
	"time"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// FuzzSecretRoundTrip: what SecretData writes, ParseSecret reads back unchanged (every field an
// agent needs, the Object Lock retention included); and any data parses or fails, never panics.
func FuzzSecretRoundTrip(f *testing.F) {
	f.Add("s3://bucket/prefix", "http://minio:9000", "us-east-1", true, "AKIA", "secret", "a long passphrase", int64(72*time.Hour), []byte(nil))
	f.Add("file:///repo", "", "", false, "", "", "", int64(0), make([]byte, 32))
	f.Fuzz(func(t *testing.T, url, endpoint, region string, pathStyle bool, id, secret, pass string, retain int64, raw []byte) {
		a := Access{
			Store: objstore.Config{URL: url, S3: objstore.S3Options{Endpoint: endpoint, Region: region, ForcePathStyle: pathStyle, ObjectLockRetention: time.Duration(retain)},
				Credentials: objstore.Credentials{AccessKeyID: id, SecretAccessKey: secret}},
			Key: repo.UserKey{Passphrase: pass, Raw: raw},
		}
		d := SecretData(a)
		got, err := ParseSecret(d)
		if url == "" || retain < 0 || a.Key.Validate() != nil {
			return // refused, or written with nothing to read back
		}
		if err != nil {
			t.Fatalf("ParseSecret(SecretData(%+v)): %v", a, err)
		}
		if len(raw) == 0 {
			got.Key.Raw = raw
		}
		if got.Store.Credentials.GCSServiceAccountJSON == nil {
			got.Store.Credentials.GCSServiceAccountJSON = a.Store.Credentials.GCSServiceAccountJSON
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip changed the access:\n got %+v\nwant %+v", got, a)
		}
		d["s3ObjectLockRetention"] = raw
		_, _ = ParseSecret(d)
	})
}
