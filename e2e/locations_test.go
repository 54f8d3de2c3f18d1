package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/harness"
)

// TestBackupLocations runs the stork controller, under its RBAC, against a real MinIO: good and
// broken locations end Available or Unavailable with a reason a person can act on, a repository
// is initialised on first use, and no secret shows in status or Events.
func TestBackupLocations(t *testing.T) {
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio")
	if err != nil {
		t.Fatal(err)
	}
	c, err := env.StartCluster(ctx, harness.ClusterOptions{Name: "bl", ControlPlaneOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyManifests(ctx, harness.RBACOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartStork(ctx); err != nil {
		t.Fatal(err)
	}
	const passphrase, wrongSecret = "correct horse battery staple", "not-the-secret-key-1234"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dr"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "minio"},
			StringData: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": m.SecretKey}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "minio-wrong"},
			StringData: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": wrongSecret}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "minio-partial"}, StringData: map[string]string{"accessKeyID": m.AccessKey}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "key"}, StringData: map[string]string{"passphrase": passphrase, "other": "another passphrase"}},
	} {
		mustCreate(t, c, o)
	}
	s3 := &storkv1.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true}
	location := func(name, url, creds, keyName string, mode storkv1.BackupLocationAccessMode) *storkv1.BackupLocation {
		l := &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: name},
			Spec: storkv1.BackupLocationSpec{URL: url, EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: keyName}, AccessMode: mode}}
		if strings.HasPrefix(url, "s3://") {
			l.Spec.S3 = s3
		}
		if creds != "" {
			l.Spec.CredentialsSecretRef = &storkv1.SecretReference{Name: creds}
		}
		return l
	}
	fileDir := t.TempDir()
	s2Location := location("file", "file://"+fileDir, "", "passphrase", "")
	s2Location.Spec.Compression = repo.CompressionS2
	cases := []struct {
		loc    *storkv1.BackupLocation
		reason string
		text   string
	}{
		{location("good", "s3://"+m.Bucket+"/site-a", "minio", "passphrase", ""), "Verified", "a probe object was written"},
		{s2Location, "Verified", "opened"},
		{location("wrong-credentials", "s3://"+m.Bucket+"/site-b", "minio-wrong", "passphrase", ""), objstore.ProblemInvalidCredentials, "Secret minio-wrong"},
		{location("no-bucket", "s3://no-such-bucket/x", "minio", "passphrase", ""), objstore.ProblemBucketNotFound, "create the bucket"},
		{location("partial-secret", "s3://"+m.Bucket+"/site-c", "minio-partial", "passphrase", ""), "SecretMissing", "has no secretAccessKey"},
		{location("empty-read-only", "s3://"+m.Bucket+"/nothing-here", "minio", "passphrase", storkv1.AccessReadOnly), "NoRepository", "ReadOnly"},
	}
	for _, tc := range cases {
		mustCreate(t, c, tc.loc)
	}
	waitLocation := func(l *storkv1.BackupLocation, reason string) *metav1.Condition {
		t.Helper()
		var cond *metav1.Condition
		err := c.WaitFor(ctx, time.Minute, "BackupLocation "+l.Name+" to be checked", func(ctx context.Context) (bool, error) {
			err := c.Client.Get(ctx, client.ObjectKeyFromObject(l), l)
			cond = meta.FindStatusCondition(l.Status.Conditions, storkv1.ConditionAvailable)
			return err == nil && cond != nil, err
		})
		if err != nil {
			t.Fatal(err)
		}
		if cond.Reason != reason {
			t.Errorf("BackupLocation %s: Available %s/%s %q, want reason %s", l.Name, cond.Status, cond.Reason, cond.Message, reason)
		}
		return cond
	}
	for _, tc := range cases {
		cond := waitLocation(tc.loc, tc.reason)
		want := map[bool]storkv1.BackupLocationPhase{true: storkv1.BackupLocationAvailable, false: storkv1.BackupLocationUnavailable}[tc.reason == "Verified"]
		if tc.loc.Status.Phase != want || !strings.Contains(cond.Message, tc.text) {
			t.Errorf("BackupLocation %s: phase %s, message %q; want %s mentioning %q", tc.loc.Name, tc.loc.Status.Phase, cond.Message, want, tc.text)
		}
		for _, secret := range []string{m.SecretKey, wrongSecret, passphrase} {
			if strings.Contains(cond.Message, secret) {
				t.Errorf("BackupLocation %s: a secret is in its status: %q", tc.loc.Name, cond.Message)
			}
		}
	}

	// The good location holds a repository now, which opens with the passphrase.
	good := cases[0].loc
	store, err := objstore.Open(ctx, objstore.Config{URL: good.Spec.URL, S3: objstore.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true},
		Credentials: objstore.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := repo.Open(ctx, store, repo.UserKey{Passphrase: passphrase})
	if err != nil {
		t.Fatalf("the repository the controller initialised: %v", err)
	}
	if r.Config().ID != good.Status.RepositoryID || good.Status.RepositoryID == "" {
		t.Errorf("status repositoryID %q, repository %q", good.Status.RepositoryID, r.Config().ID)
	}
	if r.Config().Compression != "" || r.Config().Version != repo.FormatVersion {
		t.Errorf("a location with no compression set made repository format %d, compression %q", r.Config().Version, r.Config().Compression)
	}
	r.Close()
	// The file location asked for S2.
	fileStore, err := objstore.Open(ctx, objstore.Config{URL: "file://" + fileDir})
	if err != nil {
		t.Fatal(err)
	}
	defer fileStore.Close()
	if r, err := repo.Open(ctx, fileStore, repo.UserKey{Passphrase: passphrase}); err != nil || r.Config().Compression != repo.CompressionS2 {
		t.Errorf("the repository of a location with compression s2: %v", err)
	} else {
		r.Close()
	}

	// Another key for the same repository is refused, by name.
	wrongKey := location("wrong-key", good.Spec.URL, "minio", "other", "")
	mustCreate(t, c, wrongKey)
	if cond := waitLocation(wrongKey, "WrongEncryptionKey"); !strings.Contains(cond.Message, "Secret key (key other)") {
		t.Errorf("wrong key message %q", cond.Message)
	}

	var evs eventsv1.EventList
	if err := c.Client.List(ctx, &evs, client.InNamespace("dr")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs.Items {
		seen[e.Regarding.Name+"/"+e.Reason] = true
		for _, secret := range []string{m.SecretKey, wrongSecret, passphrase} {
			if strings.Contains(e.Note, secret) {
				t.Errorf("a secret is in Event %s: %q", e.Name, e.Note)
			}
		}
	}
	for _, want := range []string{"good/RepositoryInitialised", "good/Verified", "wrong-credentials/" + objstore.ProblemInvalidCredentials} {
		if !seen[want] {
			t.Errorf("no Event %s (have %v)", want, seen)
		}
	}
}
