package archive

import (
	"context"
	"fmt"
	"github.com/zeebo/blake3"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// now is prune with no grace period and no clock-skew allowance: it deletes in one run what
// it may delete at all.
var now = repo.PruneOptions{MaxUnused: 0.1}

// storeDir returns the directory behind a file:// repository made by newRepo.
func storeDir(r *repo.Repository) string {
	return strings.TrimPrefix(strings.Fields(r.Store().String())[0], "file://")
}

// objects counts a store's objects under prefix and their bytes.
func objects(t *testing.T, r *repo.Repository, prefix string) (n int, bytes int64) {
	t.Helper()
	err := r.Store().List(context.Background(), prefix, func(o objstore.Object) error {
		n++
		bytes += o.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, bytes
}

func mustCheck(t *testing.T, r *repo.Repository) {
	t.Helper()
	rep, err := Check(context.Background(), r, repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("check found problems: %v", rep.Problems)
	}
}

func files(t *testing.T, dir string, n, size int) {
	t.Helper()
	for i := range n {
		write(t, filepath.Join(dir, fmt.Sprintf("d%d/f%d", i%4, i)), random(size), 0o644)
	}
}

func TestForgetAndPruneDeletesOnlyUnusedData(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	a, b := t.TempDir(), t.TempDir()
	files(t, a, 40, 40<<10)
	files(t, b, 20, 40<<10)
	write(t, filepath.Join(b, "shared"), []byte("in both"), 0o644)
	write(t, filepath.Join(a, "shared"), []byte("in both"), 0o644)
	idA, _, err := Backup(ctx, r, a, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	idB, _, err := Backup(ctx, r, b, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	packsBefore, bytesBefore := objects(t, r, "data/")

	// Nothing is unused yet: prune changes nothing.
	rep, err := r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksMarked != 0 || rep.PacksDeleted != 0 {
		t.Fatalf("prune with every snapshot kept: %+v", rep)
	}

	if err := r.Forget(ctx, idA); err != nil {
		t.Fatal(err)
	}
	dry := now
	dry.DryRun = true
	if rep, err = r.Prune(ctx, Referenced, dry); err != nil || rep.PacksMarked == 0 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	if n, _ := objects(t, r, "gc/"); n != 0 {
		t.Fatalf("a dry run wrote %d deletion marks", n)
	}
	rep, err = r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	packsAfter, bytesAfter := objects(t, r, "data/")
	t.Logf("prune: %+v; packs %d → %d, bytes %d → %d", rep, packsBefore, packsAfter, bytesBefore, bytesAfter)
	if rep.PacksDeleted == 0 || rep.MarksSwept != 1 || bytesAfter > bytesBefore*45/100 {
		t.Errorf("after forgetting 2/3 of the data, prune kept %d of %d bytes: %+v", bytesAfter, bytesBefore, rep)
	}
	if n, _ := objects(t, r, "gc/"); n != 0 {
		t.Errorf("%d deletion marks left after the sweep", n)
	}
	mustCheck(t, r)
	dst := filepath.Join(t.TempDir(), "b")
	if err := Restore(ctx, r, idB, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	diff(t, describe(t, b), describe(t, dst))

	// A fresh handle sees the same, smaller index.
	r2, err := repo.Open(ctx, r.Store(), repo.UserKey{Passphrase: "test passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.BlobCount() != r.BlobCount() {
		t.Errorf("reopened index has %d blobs, the pruning handle %d", r2.BlobCount(), r.BlobCount())
	}
}

// A backup that began before prune marked data may have deduplicated against it: the sweep
// waits for it, and keeps what its snapshot then references.
func TestPruneWaitsForEarlierBackupAndKeepsWhatItUsed(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	files(t, src, 30, 30<<10)
	idA, snapA, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A backup session that is running (it took its lock before the mark).
	lock, err := r.Lock(ctx, repo.BackupLock)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, idA); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksMarked == 0 || rep.PacksDeleted != 0 || len(rep.Waiting) != 1 || !strings.Contains(rep.Waiting[0], "backup session") {
		t.Fatalf("prune while an earlier backup runs: %+v", rep)
	}
	// That backup deduplicated against A's blobs and now saves a snapshot of the same tree.
	snapA.Time = time.Now()
	idLate, err := r.SaveSnapshot(ctx, snapA)
	if err != nil {
		t.Fatal(err)
	}
	// Data marked for deletion is not reused by backups that start after the mark: the
	// unchanged files of the late snapshot are read again.
	_, s3, err := Backup(ctx, r, src, BackupOptions{Parent: &idLate})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Summary.FilesReused != 0 || s3.Summary.BlobsAdded == 0 {
		t.Errorf("a backup after the mark reused marked data: %+v", s3.Summary)
	}
	if err := r.Forget(ctx, idLate); err != nil { // now only the newest snapshot needs the data
		t.Fatal(err)
	}
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err = r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.MarksSwept != 1 || rep.PacksDeleted == 0 {
		t.Fatalf("prune after the backup ended: %+v", rep)
	}
	mustCheck(t, r)
}

func TestPruneKeepsMarkedPackThatANewSnapshotNeeds(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	files(t, src, 10, 30<<10)
	idA, snapA, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, idA); err != nil {
		t.Fatal(err)
	}
	marking := now
	marking.Grace = time.Hour
	rep, err := r.Prune(ctx, Referenced, marking)
	if err != nil || rep.PacksMarked == 0 || len(rep.Waiting) != 1 {
		t.Fatalf("marking: %+v, %v", rep, err)
	}
	// A backup that began before the mark writes its snapshot, which uses the marked data.
	snapA.Time = time.Now()
	idLate, err := r.SaveSnapshot(ctx, snapA)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksKept == 0 || rep.PacksDeleted != 0 {
		t.Fatalf("sweep with a snapshot using the marked data: %+v", rep)
	}
	mustCheck(t, r)
	dst := filepath.Join(t.TempDir(), "late")
	if err := Restore(ctx, r, idLate, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	diff(t, describe(t, src), describe(t, dst))
	// The kept packs are ordinary again: backups deduplicate against them.
	_, s, err := Backup(ctx, r, src, BackupOptions{Parent: &idLate})
	if err != nil {
		t.Fatal(err)
	}
	if s.Summary.FilesReused != 10 {
		t.Errorf("backup after the sweep: %+v", s.Summary)
	}
}

func TestPruneRepacksMostlyUnusedPacks(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	// 32 files in one directory share packs; keep a quarter of them.
	for i := range 32 {
		write(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), random(20<<10), 0o644)
	}
	idA, _, err := Backup(ctx, r, src, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 32 {
		if i%4 != 0 {
			os.Remove(filepath.Join(src, fmt.Sprintf("f%02d", i)))
		}
	}
	idB, _, err := Backup(ctx, r, src, BackupOptions{Parent: &idA})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Forget(ctx, idA); err != nil {
		t.Fatal(err)
	}
	_, before := objects(t, r, "data/")
	rep, err := r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	_, after := objects(t, r, "data/")
	if rep.PacksRepacked == 0 || after > before/2 {
		t.Errorf("repack: %+v, %d → %d bytes", rep, before, after)
	}
	mustCheck(t, r)
	dst := filepath.Join(t.TempDir(), "b")
	if err := Restore(ctx, r, idB, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	diff(t, describe(t, src), describe(t, dst))
}

func TestPruneRemovesPacksOfKilledBackups(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	// A pack no index lists, as a backup killed before writing its index leaves.
	orphan := random(1000)
	key := fmt.Sprintf("%x", blake3.Sum256(orphan))
	key = "data/" + key[:2] + "/" + key
	if _, err := r.Store().PutNew(ctx, key, orphan); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, r, repo.CheckOptions{})
	if err != nil || !rep.OK() || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "in no index") {
		t.Fatalf("check with a leftover pack: %+v, %v", rep, err)
	}
	// A pack written after a running backup began may be that backup's: it is left alone
	// (the older one is marked, and waits for the backup to end).
	lock, err := r.Lock(ctx, repo.BackupLock)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	young := "data/00/" + strings.Repeat("0", 64)
	if _, err := r.Store().PutNew(ctx, young, []byte("being written by the running backup")); err != nil {
		t.Fatal(err)
	}
	rep2, err := r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.PacksUnindexed != 1 || rep2.PacksDeleted != 0 || len(rep2.Waiting) != 1 {
		t.Errorf("prune while a backup runs: %+v", rep2)
	}
	lock.Unlock(ctx)
	rep2, err = r.Prune(ctx, Referenced, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.PacksUnindexed != 1 || rep2.PacksDeleted != 2 || rep2.MarksSwept != 2 {
		t.Errorf("prune after the backup was killed: %+v", rep2)
	}
	for _, k := range []string{key, young} {
		if ok, _ := r.Store().Exists(ctx, k); ok {
			t.Errorf("%s is still there", k)
		}
	}
}

func TestOnlyOnePruneAtATime(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	lock, err := r.Lock(ctx, repo.PruneLock)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx)
	if _, err := r.Prune(ctx, Referenced, now); err == nil || !strings.Contains(err.Error(), "another prune is running") {
		t.Fatalf("second prune: %v", err)
	}
	if n, _ := objects(t, r, "locks/"); n != 1 {
		t.Errorf("%d locks after the refused prune, want the first prune's only", n)
	}
}

// damage flips one byte of a stored object.
func damage(t *testing.T, r *repo.Repository, key string, at int) {
	t.Helper()
	p := filepath.Join(storeDir(r), filepath.FromSlash(key))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[at%len(data)] ^= 0x55
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// largestKey returns the largest object under prefix: under data/ a pack of file content
// rather than the small pack of tree blobs.
func largestKey(t *testing.T, r *repo.Repository, prefix string) string {
	t.Helper()
	var key string
	var size int64 = -1
	r.Store().List(context.Background(), prefix, func(o objstore.Object) error {
		if o.Size > size {
			key, size = o.Key, o.Size
		}
		return nil
	})
	if key == "" {
		t.Fatalf("no object under %s", prefix)
	}
	return key
}

func TestCheckNamesDamagedObjects(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		prefix   string
		readData bool
		remove   bool
	}{
		{"byte flipped in a pack, structure only", "data/", false, false},
		{"byte flipped in a pack", "data/", true, false},
		{"pack missing", "data/", false, true},
		{"byte flipped in an index file", "index/", false, false},
		{"byte flipped in a snapshot", "snapshots/", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			src := t.TempDir()
			files(t, src, 8, 30<<10)
			if _, _, err := Backup(ctx, r, src, BackupOptions{}); err != nil {
				t.Fatal(err)
			}
			mustCheck(t, r)
			key := largestKey(t, r, tc.prefix)
			if tc.remove {
				r.Store().Delete(ctx, key)
			} else {
				damage(t, r, key, 100)
			}
			r2, err := repo.Open(ctx, r.Store(), repo.UserKey{Passphrase: "test passphrase"})
			if err != nil {
				t.Fatalf("opening a repository with a damaged %s: %v", key, err)
			}
			defer r2.Close()
			rep, err := Check(ctx, r2, repo.CheckOptions{ReadData: tc.readData})
			if err != nil {
				t.Fatal(err)
			}
			if tc.prefix == "data/" && !tc.readData && !tc.remove {
				if !rep.OK() {
					t.Errorf("a structure check read pack content: %v", rep.Problems)
				}
				return
			}
			named := false
			for _, p := range rep.Problems {
				named = named || strings.Contains(p.Error(), key)
			}
			if !named {
				t.Errorf("no problem names %s: %v", key, rep.Problems)
			}
			if tc.prefix != "data/" {
				if _, err := r2.Prune(ctx, Referenced, now); err == nil {
					t.Errorf("prune ran on a repository with a damaged %s", key)
				}
			}
		})
	}
}

// Several writers back up into one repository while others forget snapshots and prune runs
// again and again, each through its own handle as separate processes would: afterwards the
// repository checks clean and every snapshot left restores to what was backed up.
func TestConcurrentBackupsForgetAndPrune(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRepo(t)
	open := func() *repo.Repository {
		h, err := repo.Open(ctx, r.Store(), repo.UserKey{Passphrase: "test passphrase"})
		if err != nil {
			t.Error(err)
			return nil
		}
		t.Cleanup(h.Close)
		return h
	}
	type saved struct {
		id   repo.ID
		want map[string]string
	}
	const writers, rounds = 3, 10
	results := make(chan saved, writers*rounds)
	errs := make(chan error, writers+1)
	shared := random(200 << 10) // in every tree, so writers deduplicate against each other
	// Handles are opened first (scrypt takes a while), so that everything starts together.
	handles := make([]*repo.Repository, writers+1)
	for i := range handles {
		handles[i] = open()
	}
	for w := range writers {
		h := handles[w]
		src := t.TempDir()
		go func() {
			var parent *repo.ID
			var mine []repo.ID
			for i := range rounds {
				write(t, filepath.Join(src, "shared"), shared, 0o644)
				write(t, filepath.Join(src, fmt.Sprintf("r%d", i)), random(60<<10), 0o644)
				os.Remove(filepath.Join(src, fmt.Sprintf("r%d", i-2)))
				want := describe(t, src)
				id, _, err := Backup(ctx, h, src, BackupOptions{Parent: parent})
				if err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", w, i, err)
					return
				}
				parent = &id
				mine = append(mine, id)
				if len(mine) > 2 { // keep the last two
					if err := h.Forget(ctx, mine[0]); err != nil {
						errs <- err
						return
					}
					mine = mine[1:]
				}
				results <- saved{id, want}
			}
			errs <- nil
		}()
	}
	pruner := handles[writers]
	stopPrune := make(chan struct{})
	pruned := make(chan *repo.PruneReport, 100)
	go func() {
		for {
			select {
			case <-stopPrune:
				errs <- nil
				return
			default:
			}
			rep, err := pruner.Prune(ctx, Referenced, now)
			if err != nil {
				errs <- fmt.Errorf("prune: %w", err)
				return
			}
			pruned <- rep
		}
	}()
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(stopPrune)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	close(pruned)
	deleted := 0
	runs := 0
	for rep := range pruned {
		runs++
		deleted += rep.PacksDeleted
	}
	t.Logf("%d prunes deleted %d packs while %d writers made %d backups", runs, deleted, writers, writers*rounds)
	if deleted == 0 {
		t.Errorf("prune never deleted anything; the test did not exercise concurrency")
	}
	// A last prune with nothing running, then everything must check and restore.
	if _, err := r.Prune(ctx, Referenced, now); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, r)
	close(results)
	left := 0
	for s := range results {
		if _, err := r.LoadSnapshot(ctx, s.id); err != nil {
			continue // forgotten
		}
		left++
		dst := filepath.Join(t.TempDir(), "r")
		if err := Restore(ctx, r, s.id, dst, RestoreOptions{}); err != nil {
			t.Fatalf("restoring %s: %v", s.id, err)
		}
		diff(t, s.want, describe(t, dst))
	}
	if left != writers*2 {
		t.Errorf("%d snapshots left, want %d", left, writers*2)
	}
}
