package restore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/repo/repotest"
	"stork.dev/stork/internal/retry"
)

// TestCheckRecord: a restore trusts the Backup object only as far as its signed record agrees
// with it; every field a changed object could use to point the restore elsewhere is named.
func TestCheckRecord(t *testing.T) {
	ctx := context.Background()
	rp, url := repotest.New(t, "a long passphrase")
	cat := catalog.Of(rp)
	rec := &catalog.Record{Name: "nightly", Namespace: "shop", UID: "src-uid", Cluster: "site-a", Phase: storkv1.BackupCompleted,
		ResourcesSnapshotID: "res-1", Volumes: []storkv1.BackupVolume{{ClaimName: "data", RepositorySnapshotID: "snap-data"}}}
	recID, err := cat.WriteRecord(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	other, err := cat.WriteRecord(ctx, &catalog.Record{Name: "other", Namespace: "bank", UID: "other-uid", Cluster: "site-a",
		Volumes: []storkv1.BackupVolume{{ClaimName: "data", RepositorySnapshotID: "snap-bank"}}})
	if err != nil {
		t.Fatal(err)
	}
	backup := func(change func(*storkv1.Backup)) *storkv1.Backup {
		b := &storkv1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "dr", Name: "nightly", UID: "dr-uid",
			Annotations: map[string]string{storkv1.AnnotationSourceUID: "src-uid"}},
			Status: storkv1.BackupStatus{Imported: true, SourceNamespace: "shop", RecordID: recID.String(), ResourcesSnapshotID: "res-1",
				Volumes: []storkv1.BackupVolume{{ClaimName: "data", RepositorySnapshotID: "snap-data"}}}}
		if change != nil {
			change(b)
		}
		return b
	}
	for _, tc := range []struct {
		name         string
		b            *storkv1.Backup
		srcNS        string
		reason, want string
	}{
		{name: "as recorded", b: backup(nil), srcNS: "shop"},
		{name: "no record to compare with", b: backup(func(b *storkv1.Backup) { b.Status.RecordID = "" }), srcNS: "shop"},
		{name: "a volume pointed at another snapshot", srcNS: "shop", reason: "RecordMismatch", want: `status.volumes[data].repositorySnapshotID is "snap-bank" but its signed record`,
			b: backup(func(b *storkv1.Backup) { b.Status.Volumes[0].RepositorySnapshotID = "snap-bank" })},
		{name: "objects pointed at another snapshot", srcNS: "shop", reason: "RecordMismatch", want: "status.resourcesSnapshotID",
			b: backup(func(b *storkv1.Backup) { b.Status.ResourcesSnapshotID = "res-2" })},
		{name: "another source namespace claimed", srcNS: "bank", reason: "RecordMismatch", want: "source namespace", b: backup(nil)},
		{name: "another backup's record", srcNS: "bank", reason: "RecordMismatch", want: "UID",
			b: backup(func(b *storkv1.Backup) {
				b.Status.RecordID, b.Status.SourceNamespace, b.Status.ResourcesSnapshotID = other.String(), "bank", ""
				b.Status.Volumes[0].RepositorySnapshotID = "snap-bank"
			})},
		{name: "a local backup is compared by its own UID", srcNS: "shop", reason: "RecordMismatch", want: `is "dr-uid"`,
			b: backup(func(b *storkv1.Backup) { b.Status.Imported = false })},
		{name: "not a snapshot ID", srcNS: "shop", reason: "RecordMismatch", want: "is not a repository snapshot ID",
			b: backup(func(b *storkv1.Backup) { b.Status.RecordID = "zz" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, msg, err := checkRecord(ctx, cat, tc.b, tc.srcNS)
			if err != nil {
				t.Fatal(err)
			}
			if reason != tc.reason || !strings.Contains(msg, tc.want) {
				t.Fatalf("checkRecord: %s: %s; want %s containing %q", reason, msg, tc.reason, tc.want)
			}
		})
	}

	// Every data pack damaged: the record cannot be read, and the restore fails naming the
	// damaged object rather than waiting for the bucket to heal.
	dir := strings.TrimPrefix(url, "file://")
	err = filepath.WalkDir(filepath.Join(dir, "data"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0xff
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := objstore.Open(ctx, objstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	fresh, err := repo.Open(ctx, store, repo.UserKey{Passphrase: "a long passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	reason, msg, err := checkRecord(ctx, catalog.Of(fresh), backup(nil), "shop")
	if err != nil || reason != "RecordDamaged" || !strings.Contains(msg, "damaged object data/") {
		t.Fatalf("checkRecord with damaged packs: %s: %s (%v); want RecordDamaged naming the object", reason, msg, err)
	}
}

// TestRetryStepGivesUp: a failing step is retried with backoff, visibly, and fails the Restore
// once the retry limit has passed.
func TestRetryStepGivesUp(t *testing.T) {
	r := &Reconciler{Retry: retry.Policy{Limit: time.Hour}}
	rs := &storkv1.Restore{}
	res := r.retryStep(rs, "ReadingRecord", errors.New("the bucket timed out"))
	c := meta.FindStatusCondition(rs.Status.Conditions, storkv1.ConditionProgressing)
	if res.RequeueAfter <= 0 || rs.Status.Retry == nil || rs.Status.Retry.Attempts != 1 || c == nil || c.Reason != "ReadingRecord" {
		t.Fatalf("after one failure: result %+v, retry %+v, Progressing %+v", res, rs.Status.Retry, c)
	}
	rs.Status.Retry.GiveUpTime = metav1.NewTime(time.Now().Add(-time.Second))
	r.retryStep(rs, "ReadingRecord", errors.New("the bucket timed out"))
	c = meta.FindStatusCondition(rs.Status.Conditions, storkv1.ConditionValid)
	if rs.Status.Phase != storkv1.RestoreFailed || c == nil || c.Reason != "ReadingRecordFailed" ||
		!strings.Contains(c.Message, "ReadingRecord failed 2 times") || !strings.Contains(c.Message, "timed out") {
		t.Fatalf("past the limit: phase %s, Valid %+v", rs.Status.Phase, c)
	}
}
