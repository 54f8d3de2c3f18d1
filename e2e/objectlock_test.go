package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/harness"
)

// TestEngineOnObjectLockBucket runs the whole repository life cycle — init, backups, restore,
// forget, prune, check — in a MinIO bucket with Object Lock and a default governance retention,
// where no object version can be overwritten or removed: nothing Stork does needs either. Prune
// leaves the packs whose retention runs, extends the retention of what is in use, and MinIO
// refuses a delete of a locked version.
func TestEngineOnObjectLockBucket(t *testing.T) {
	t.Parallel()
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := env.StartMinIO(ctx, "minio-lock")
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "locked"
	if err := m.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	mode, validity, unit := minio.Governance, uint(1), minio.Days
	if err := m.Client.SetObjectLockConfig(ctx, bucket, &mode, &validity, &unit); err != nil {
		t.Fatal(err)
	}
	store, err := objstore.Open(ctx, objstore.Config{
		URL:         "s3://" + bucket + "/repo",
		S3:          objstore.S3Options{Endpoint: m.Endpoint, ForcePathStyle: true},
		Credentials: objstore.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := repo.Init(ctx, store, repo.UserKey{Passphrase: "object lock test"}, repo.InitOptions{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := t.TempDir()
	big := make([]byte, 3<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small"), []byte("stays"), 0o644)
	first, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{})
	if err != nil {
		t.Fatalf("backup into an Object Lock bucket: %v", err)
	}
	os.Remove(filepath.Join(src, "big"))
	second, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{Parent: &first})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, first); err != nil {
		t.Fatalf("forget in an Object Lock bucket: %v", err)
	}
	if !store.ObjectLock() {
		t.Fatal("the store does not see the bucket's Object Lock")
	}
	retention := func() map[string]time.Time {
		t.Helper()
		out := map[string]time.Time{}
		for o := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "repo/", Recursive: true}) {
			key := strings.TrimPrefix(o.Key, "repo/")
			until, err := store.RetainedUntil(ctx, key)
			if err != nil || until.IsZero() {
				t.Fatalf("retention of %s: %v %v", key, until, err)
			}
			out[key] = until
		}
		return out
	}
	before := retention()
	opts := repo.DefaultPruneOptions()
	// Extend every retention that ends within two days: all of them, the bucket's being one day.
	opts.Grace, opts.ClockSkew, opts.ExtendWithin = 0, 0, 48*time.Hour
	pr, err := r.Prune(ctx, archive.Referenced, opts)
	if err != nil {
		t.Fatalf("prune in an Object Lock bucket: %v", err)
	}
	// Every pack is under the bucket's default retention of a day: prune leaves them, indexed,
	// for a prune after the retention, rather than hiding them behind delete markers.
	if pr.PacksMarked == 0 || pr.PacksDeleted != 0 || pr.PacksLocked == 0 || time.Until(pr.LockedUntil) < 23*time.Hour {
		t.Errorf("prune %+v: want the unused packs marked, none deleted, all left for their retention", pr)
	}
	// What is in use has its retention extended; the packs left to age out do not.
	after := retention()
	unchanged, packs := 0, 0
	for key, until := range before {
		if !strings.HasPrefix(key, "data/") {
			if strings.HasPrefix(key, "index/") || key == "config" {
				if !after[key].After(until) {
					t.Errorf("%s: retention %s not extended (was %s)", key, after[key], until)
				}
			}
			continue
		}
		packs++
		if after[key].Equal(until) {
			unchanged++
		}
	}
	if unchanged != pr.PacksLocked || pr.LocksExtended == 0 {
		t.Errorf("%d of %d packs kept their retention, want the %d left locked; %d objects extended", unchanged, packs, pr.PacksLocked, pr.LocksExtended)
	}
	var packVersion minio.ObjectInfo
	for o := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "repo/data/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.IsDeleteMarker {
			t.Errorf("prune deleted locked pack %s (delete marker)", o.Key)
		}
		packVersion = o
	}
	// What prune does not try, MinIO refuses: removing a locked version.
	err = m.Client.RemoveObject(ctx, bucket, packVersion.Key, minio.RemoveObjectOptions{VersionID: packVersion.VersionID})
	if err == nil || !strings.Contains(err.Error(), "WORM protected") {
		t.Errorf("removing locked version %s of %s: %v, want it refused (WORM protected)", packVersion.VersionID, packVersion.Key, err)
	}
	t.Logf("prune left %d locked packs (until %s), extended the retention of %d objects in use; MinIO refused deleting a locked version: %s: %v",
		pr.PacksLocked, pr.LockedUntil.Format(time.RFC3339), pr.LocksExtended, minio.ToErrorResponse(err).Code, err)
	if rep, err := archive.Check(ctx, r, repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check: %+v, %v", rep, err)
	}
	dst := t.TempDir()
	if err := archive.Restore(ctx, r, second, dst, archive.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "small")); !bytes.Equal(got, []byte("stays")) {
		t.Errorf("restored %q", got)
	}
}

// TestEngineWritesObjectLockRetention: on a bucket with Object Lock but no default retention,
// a store opened with an explicit retention (a location's spec.s3.objectLockRetention, or its
// schedules' retention span) writes every object — config, keys, packs, indexes, snapshots —
// with that retention in governance mode, so that MinIO refuses to remove any of their
// versions; without it, objects carry none.
func TestEngineWritesObjectLockRetention(t *testing.T) {
	t.Parallel()
	env := harness.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := env.StartMinIO(ctx, "minio-retain")
	if err != nil {
		t.Fatal(err)
	}
	const bucket, period = "retained", 72 * time.Hour
	if err := m.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	open := func(prefix string, retain time.Duration) *objstore.Store {
		t.Helper()
		store, err := objstore.Open(ctx, objstore.Config{
			URL:         "s3://" + bucket + "/" + prefix,
			S3:          objstore.S3Options{Endpoint: m.Endpoint, ForcePathStyle: true, ObjectLockRetention: retain},
			Credentials: objstore.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	}
	src := t.TempDir()
	big := make([]byte, 7<<20) // more than one 5 MiB part: a multipart upload
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small"), []byte("kept"), 0o644)
	for _, tc := range []struct {
		prefix string
		retain time.Duration
	}{{"explicit", period}, {"none", 0}} {
		store := open(tc.prefix, tc.retain)
		if got := store.RetentionPeriod(); got != tc.retain {
			t.Fatalf("%s: retention period %v, want %v", tc.prefix, got, tc.retain)
		}
		start := time.Now()
		r, err := repo.Init(ctx, store, repo.UserKey{Passphrase: "object lock retention test"}, repo.InitOptions{PackSize: 8 << 20})
		if err != nil {
			t.Fatalf("%s: init: %v", tc.prefix, err)
		}
		if _, _, err := archive.Backup(ctx, r, src, archive.BackupOptions{}); err != nil {
			t.Fatalf("%s: backup with retention %v: %v", tc.prefix, tc.retain, err)
		}
		r.Close()
		n := 0
		for o := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: tc.prefix + "/", Recursive: true, WithVersions: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			if o.IsDeleteMarker {
				continue // a repository lock, removed after use: its version stays retained
			}
			n++
			mode, until, err := m.Client.GetObjectRetention(ctx, bucket, o.Key, o.VersionID)
			switch {
			case tc.retain == 0 && err == nil && until != nil:
				t.Errorf("%s: %s retained until %s with no retention asked for", tc.prefix, o.Key, until)
			case tc.retain > 0 && (err != nil || mode == nil || *mode != minio.Governance || until == nil ||
				until.Before(start.Add(period-time.Minute)) || until.After(time.Now().Add(period+time.Minute))):
				t.Errorf("%s: %s retention %v until %v (%v), want GOVERNANCE until about now + %v", tc.prefix, o.Key, mode, until, err, period)
			}
			if tc.retain > 0 && strings.HasPrefix(o.Key, tc.prefix+"/data/") {
				err := m.Client.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID})
				if err == nil || !strings.Contains(err.Error(), "WORM protected") {
					t.Errorf("removing version %s of %s: %v, want it refused", o.VersionID, o.Key, err)
				}
			}
		}
		if n < 5 {
			t.Fatalf("%s: only %d objects written", tc.prefix, n)
		}
	}
}

// TestBackupLocationObjectLockRetention: through the whole stack — a BackupLocation on a MinIO
// bucket with Object Lock and no default retention, spec.s3.objectLockRetention 48h, a Backup
// uploaded by the node agent — every object in the location carries a governance retention of
// about 48 hours, the location's status and Available condition say so, and MinIO refuses to
// remove a pack.
func TestBackupLocationObjectLockRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := harness.New(t)
	m, err := env.StartMinIO(ctx, "minio-lockloc")
	if err != nil {
		t.Fatal(err)
	}
	const bucket, period = "immutable", 48 * time.Hour
	if err := m.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	c, node, _ := oneNodeCluster(ctx, t, env, "lockloc")
	writeTree(t, makeLocalVolume(t, c, "app", "data", node, nil), 5, 2<<20)
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "creds"},
		StringData: map[string]string{"accessKeyID": m.AccessKey, "secretAccessKey": m.SecretKey}})
	mustCreate(t, c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "key"},
		StringData: map[string]string{"passphrase": "passphrase of the object lock test"}})
	mustCreate(t, c, &storkv1.BackupLocation{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "worm"},
		Spec: storkv1.BackupLocationSpec{URL: "s3://" + bucket + "/stork",
			S3: &storkv1.S3Options{Endpoint: m.Endpoint, Region: "us-east-1", ForcePathStyle: true,
				ObjectLockRetention: &metav1.Duration{Duration: period}},
			CredentialsSecretRef:   &storkv1.SecretReference{Name: "creds"},
			EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"}}})
	loc := &storkv1.BackupLocation{}
	err = c.WaitFor(ctx, time.Minute, "location worm to be Available", func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: "worm"}, loc)
		return err == nil && loc.Status.Phase == storkv1.BackupLocationAvailable, client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("%v: %+v", err, loc.Status)
	}
	cond := meta.FindStatusCondition(loc.Status.Conditions, storkv1.ConditionAvailable)
	if r := loc.Status.ObjectLockRetention; r == nil || r.Duration != period || !strings.Contains(cond.Message, "S3 Object Lock: new objects are retained 48h0m0s") {
		t.Errorf("location status: objectLockRetention %v, Available %q", r, cond.Message)
	}
	start := time.Now()
	mustCreate(t, c, &storkv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s1"},
		Spec: storkv1.SnapshotSpec{Source: storkv1.SnapshotSource{ClaimName: "data"}, BackupLocation: "worm"}})
	b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "s1"}}
	waitBackup(t, c, b)

	n, packs := 0, 0
	for o := range m.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "stork/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if o.IsDeleteMarker {
			continue
		}
		n++
		mode, until, err := m.Client.GetObjectRetention(ctx, bucket, o.Key, o.VersionID)
		if err != nil || mode == nil || *mode != minio.Governance || until == nil ||
			until.Before(start.Add(period-time.Minute)) || until.After(time.Now().Add(period+time.Minute)) {
			t.Errorf("%s: retention %v until %v (%v), want GOVERNANCE until about now + %v", o.Key, mode, until, err, period)
		}
		if strings.HasPrefix(o.Key, "stork/data/") {
			packs++
			if err := m.Client.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID}); err == nil || !strings.Contains(err.Error(), "WORM protected") {
				t.Errorf("removing version %s of pack %s: %v, want it refused", o.VersionID, o.Key, err)
			}
		}
	}
	if packs == 0 || n < 6 {
		t.Fatalf("%d objects, %d packs in the location", n, packs)
	}
	t.Logf("%d objects (%d packs) written by the controller and the agent, each retained in GOVERNANCE mode until about now + %v", n, packs, period)
}
