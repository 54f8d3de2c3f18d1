package locations

import (
	"context"
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/repo/repotest"
)

const passphrase = "a long passphrase"

// newRepository makes a backup repository in a temporary directory and returns it and the
// directory.
func newRepository(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	r, url := repotest.New(t, passphrase)
	return r, strings.TrimPrefix(url, "file://")
}

// backupRandomFiles backs up a directory of incompressible files and returns the snapshot.
func backupRandomFiles(t *testing.T, r *repo.Repository) repo.ID {
	t.Helper()
	src := t.TempDir()
	for _, name := range []string{"a", "b", "c"} {
		data := make([]byte, 300<<10)
		_, _ = rand.Read(data)
		if err := os.WriteFile(filepath.Join(src, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	id, _, err := archive.Backup(context.Background(), r, src, archive.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// packFiles counts the pack files of the repository in dir and their bytes.
func packFiles(t *testing.T, dir string) (n int, bytes int64) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n, bytes = n+1, bytes+info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, bytes
}

// location is a BackupLocation of the repository in dir, checked every minute and pruned every
// interval with the given grace.
func location(dir string, mode storkv1.BackupLocationAccessMode, interval, grace *metav1.Duration) *storkv1.BackupLocation {
	return &storkv1.BackupLocation{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "loc", Generation: 1},
		Spec: storkv1.BackupLocationSpec{URL: "file://" + dir, AccessMode: mode,
			EncryptionKeySecretRef: storkv1.SecretKeyReference{Name: "key", Key: "passphrase"},
			SyncPeriod:             &metav1.Duration{Duration: time.Minute},
			Maintenance:            &storkv1.Maintenance{Interval: interval, Grace: grace}},
	}
}

func seconds(n int) *metav1.Duration {
	return &metav1.Duration{Duration: time.Duration(n) * time.Second}
}

type harness struct {
	t     *testing.T
	c     client.Client
	clock *clocktesting.FakePassiveClock
	rec   *events.FakeRecorder
	r     *Reconciler
	key   client.ObjectKey
}

func newHarness(t *testing.T, loc *storkv1.BackupLocation) *harness {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(storkv1.AddToScheme(s))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "key"}, Data: map[string][]byte{"passphrase": []byte(passphrase)}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(loc, secret).WithStatusSubresource(loc).Build()
	clk := clocktesting.NewFakePassiveClock(time.Now().Truncate(time.Second)) // status times are whole seconds
	rec := events.NewFakeRecorder(100)
	return &harness{t: t, c: c, clock: clk, rec: rec, key: client.ObjectKeyFromObject(loc),
		r: &Reconciler{Client: c, Secrets: c, Recorder: rec, Clock: clk}}
}

// after moves the clock on by d and reconciles once.
func (h *harness) after(d time.Duration) (ctrl.Result, *storkv1.BackupLocation) {
	h.t.Helper()
	h.clock.SetTime(h.clock.Now().Add(d))
	res, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: h.key})
	if err != nil {
		h.t.Fatal(err)
	}
	loc := &storkv1.BackupLocation{}
	if err := h.c.Get(context.Background(), h.key, loc); err != nil {
		h.t.Fatal(err)
	}
	return res, loc
}

// events drains the Events recorded so far.
func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func hasEvent(evs []string, prefix string) bool {
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

func TestPruneFreesForgottenData(t *testing.T) {
	rp, dir := newRepository(t)
	id := backupRandomFiles(t, rp)
	if err := rp.Forget(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	packsBefore, bytesBefore := packFiles(t, dir)
	if packsBefore == 0 || bytesBefore < 900<<10 {
		t.Fatalf("the backup left %d pack files (%d bytes): too few to test with", packsBefore, bytesBefore)
	}
	succeeded, deleted := testutil.ToFloat64(prunes.WithLabelValues("succeeded")), testutil.ToFloat64(pruneDeletedBytes)

	// Checked every minute, pruned every 10s with no grace period.
	h := newHarness(t, location(dir, storkv1.AccessReadWrite, seconds(10), seconds(0)))
	res, loc := h.after(0)
	if loc.Status.Phase != storkv1.BackupLocationAvailable {
		t.Fatalf("phase %s: %+v", loc.Status.Phase, loc.Status.Conditions)
	}
	// The first Available check starts the interval; it prunes nothing.
	if loc.Status.LastPruneTime == nil || loc.Status.LastPruneResult != notPrunedYet {
		t.Fatalf("after the first check: lastPruneTime %v, result %q", loc.Status.LastPruneTime, loc.Status.LastPruneResult)
	}
	if n, _ := packFiles(t, dir); n != packsBefore {
		t.Fatalf("the first check deleted packs: %d left of %d", n, packsBefore)
	}
	// The prune is due before the next check: that is when the location is requeued.
	if res.RequeueAfter > 10*time.Second {
		t.Errorf("requeued after %s, want at most the 10s maintenance interval", res.RequeueAfter)
	}
	firstPrune, firstCheck := loc.Status.LastPruneTime.Time, loc.Status.LastValidationTime.Time

	// 10s on, the check is not due but the prune is: it must not be starved.
	res, loc = h.after(10 * time.Second)
	if got := loc.Status.LastValidationTime.Time; !got.Equal(firstCheck) {
		t.Errorf("checked again at %v, only 10s after the check at %v", got, firstCheck)
	}
	if n, b := packFiles(t, dir); n != 0 || b != 0 {
		t.Fatalf("after the prune: %d pack files (%d bytes) left, want none", n, b)
	}
	st := loc.Status
	if !st.LastPruneTime.After(firstPrune) || !strings.Contains(st.LastPruneResult, "deleted "+strconv.Itoa(packsBefore)+" packs") {
		t.Errorf("after the prune: lastPruneTime %v, result %q", st.LastPruneTime, st.LastPruneResult)
	}
	if st.Phase != storkv1.BackupLocationAvailable {
		t.Errorf("phase %s after the prune", st.Phase)
	}
	if evs := h.events(); !hasEvent(evs, "Normal "+EventPruned+" ") {
		t.Errorf("no %s Event: %q", EventPruned, evs)
	}
	if got := testutil.ToFloat64(prunes.WithLabelValues("succeeded")) - succeeded; got != 1 {
		t.Errorf("%v successful prunes counted, want 1", got)
	}
	if got := testutil.ToFloat64(pruneDeletedBytes) - deleted; got != float64(bytesBefore) {
		t.Errorf("%v deleted bytes counted, want %d", got, bytesBefore)
	}
	if res.RequeueAfter > 10*time.Second {
		t.Errorf("requeued after %s, want at most 10s", res.RequeueAfter)
	}

	// Not due again 5s later.
	_, loc = h.after(5 * time.Second)
	if !loc.Status.LastPruneTime.Equal(st.LastPruneTime) {
		t.Errorf("pruned again after 5s of a 10s interval")
	}
}

func TestFailedPruneLeavesLocationAvailable(t *testing.T) {
	rp, dir := newRepository(t)
	backupRandomFiles(t, rp)
	failed := testutil.ToFloat64(prunes.WithLabelValues("failed"))
	h := newHarness(t, location(dir, storkv1.AccessReadWrite, seconds(10), seconds(0)))
	h.after(0)

	// Another prune (storkctl's, say) holds the prune lock.
	lock, err := rp.Lock(context.Background(), repo.PruneLock)
	if err != nil {
		t.Fatal(err)
	}
	_, loc := h.after(10 * time.Second)
	if !strings.HasPrefix(loc.Status.LastPruneResult, "failed: ") || loc.Status.Phase != storkv1.BackupLocationAvailable {
		t.Errorf("with the prune lock held: phase %s, result %q", loc.Status.Phase, loc.Status.LastPruneResult)
	}
	if evs := h.events(); !hasEvent(evs, "Warning "+EventPruneFailed+" ") {
		t.Errorf("no %s Event: %q", EventPruneFailed, evs)
	}
	if got := testutil.ToFloat64(prunes.WithLabelValues("failed")) - failed; got != 1 {
		t.Errorf("%v failed prunes counted, want 1", got)
	}

	// An interval later it is tried again, and succeeds; it freed nothing, so no Pruned Event.
	if err := lock.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, loc = h.after(10 * time.Second)
	if r := loc.Status.LastPruneResult; strings.HasPrefix(r, "failed") || !strings.Contains(r, "deleted 0 packs") {
		t.Errorf("second prune: %q", r)
	}
	if evs := h.events(); hasEvent(evs, "Normal "+EventPruned) {
		t.Errorf("a Pruned Event for a prune that deleted nothing: %q", evs)
	}
}

func TestLocationsNotPruned(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  storkv1.BackupLocationAccessMode
		key   string // Secret of the encryption key
		phase storkv1.BackupLocationPhase
	}{
		{"read-only", storkv1.AccessReadOnly, "key", storkv1.BackupLocationAvailable},
		{"unavailable", storkv1.AccessReadWrite, "no-such-secret", storkv1.BackupLocationUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp, dir := newRepository(t)
			id := backupRandomFiles(t, rp)
			if err := rp.Forget(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			packs, _ := packFiles(t, dir)
			loc := location(dir, tc.mode, seconds(10), seconds(0))
			loc.Spec.EncryptionKeySecretRef.Name = tc.key
			h := newHarness(t, loc)
			for _, d := range []time.Duration{0, 10 * time.Second, time.Hour} {
				res, loc := h.after(d)
				if loc.Status.Phase != tc.phase || loc.Status.LastPruneTime != nil || loc.Status.LastPruneResult != "" {
					t.Fatalf("phase %s, lastPruneTime %v, result %q", loc.Status.Phase, loc.Status.LastPruneTime, loc.Status.LastPruneResult)
				}
				// Only checks are planned: a prune would be due within 10s.
				if res.RequeueAfter <= 10*time.Second {
					t.Errorf("requeued after %s, want the next check's time", res.RequeueAfter)
				}
			}
			if n, _ := packFiles(t, dir); n != packs {
				t.Errorf("%d pack files left of %d", n, packs)
			}
		})
	}
}

func TestMaintenanceDefaults(t *testing.T) {
	for _, tc := range []struct {
		name            string
		m               *storkv1.Maintenance
		interval, grace time.Duration
	}{
		{"unset", nil, 24 * time.Hour, time.Hour},
		{"empty", &storkv1.Maintenance{}, 24 * time.Hour, time.Hour},
		{"zero grace", &storkv1.Maintenance{Grace: seconds(0)}, 24 * time.Hour, 0},
		{"set", &storkv1.Maintenance{Interval: seconds(3600), Grace: seconds(60)}, time.Hour, time.Minute},
		{"interval below the minimum", &storkv1.Maintenance{Interval: seconds(0)}, 10 * time.Second, time.Hour},
	} {
		loc := &storkv1.BackupLocation{Spec: storkv1.BackupLocationSpec{Maintenance: tc.m}}
		o := pruneOptions(loc)
		if got := pruneInterval(loc); got != tc.interval || o.Grace != tc.grace {
			t.Errorf("%s: interval %s, grace %s; want %s, %s", tc.name, got, o.Grace, tc.interval, tc.grace)
		}
		if d := repo.DefaultPruneOptions(); o.MaxUnused != d.MaxUnused || o.ClockSkew != d.ClockSkew {
			t.Errorf("%s: options %+v differ from repo's defaults beyond grace", tc.name, o)
		}
	}
}

func TestPruneSummary(t *testing.T) {
	got := PruneSummary(&repo.PruneReport{BlobsReferenced: 12, PacksMarked: 3, BytesMarked: 3 << 20, PacksDeleted: 2, BytesDeleted: 1536,
		Waiting: []string{"gc/x"}})
	want := "12 blobs in use; marked 3 packs (3.0 MiB) for deletion; deleted 2 packs (1.5 KiB); 1 deletion marks wait for their grace period or for running backups"
	if got != want {
		t.Errorf("summary\n%s\nwant\n%s", got, want)
	}
}
