package access

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// Access is what it takes to open a location's repository: the store and the key.
type Access struct {
	Store objstore.Config
	Key   repo.UserKey
}

// Open opens the store and the repository of an Access. Close the store when done with both.
func (a Access) Open(ctx context.Context) (*objstore.Store, *repo.Repository, error) {
	store, err := objstore.Open(ctx, a.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", a.Store.URL, err)
	}
	r, err := repo.Open(ctx, store, a.Key)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("opening the repository in %s: %w", a.Store.URL, err)
	}
	return store, r, nil
}

// Keys of an access Secret (see SecretData).
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
	// keyLockRetention is the Object Lock retention of what the agent writes (a Go duration).
	keyLockRetention = "s3ObjectLockRetention"
)

// SecretData is the content of the Secret an agent reads to reach a location for one task:
// everything in one place, in Stork's namespace, so that agents never read the application's
// Secrets.
func SecretData(a Access) map[string][]byte {
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
	if r := a.Store.S3.ObjectLockRetention; r > 0 {
		d[keyLockRetention] = []byte(r.String())
	}
	return d
}

// ParseSecret reads an access Secret's data back.
func ParseSecret(d map[string][]byte) (Access, error) {
	if len(d[keyURL]) == 0 {
		return Access{}, fmt.Errorf("the access Secret has no %s", keyURL)
	}
	pathStyle, _ := strconv.ParseBool(string(d[keyPathStyle]))
	var retain time.Duration
	if v := d[keyLockRetention]; len(v) > 0 {
		var err error
		if retain, err = time.ParseDuration(string(v)); err != nil || retain < 0 {
			return Access{}, fmt.Errorf("the access Secret's %s %q is not a duration", keyLockRetention, v)
		}
	}
	a := Access{
		Store: objstore.Config{URL: string(d[keyURL]),
			S3: objstore.S3Options{Endpoint: string(d[keyEndpoint]), Region: string(d[keyRegion]), ForcePathStyle: pathStyle, ObjectLockRetention: retain},
			Credentials: objstore.Credentials{AccessKeyID: string(d[keyAccessKeyID]), SecretAccessKey: string(d[keySecretKey]),
				SessionToken: string(d[keySessionToken]), GCSServiceAccountJSON: d[keyGCS],
				AzureAccountName: string(d[keyAzureAccount]), AzureAccountKey: string(d[keyAzureKey])}},
		Key: repo.UserKey{Passphrase: string(d[keyPassphrase]), Raw: d[keyRawKey]},
	}
	return a, a.Key.Validate()
}

// LabelFor on an access Secret names the namespace whose VolumeTasks may use it: an agent
// refuses a task that names the access Secret of another namespace's Backup or Restore.
const LabelFor = "stork.dev/access-for-namespace"
