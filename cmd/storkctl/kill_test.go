package main

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/repo/repotest"
)

// TestMain lets TestKilledBackup run this test binary as storkctl itself.
func TestMain(m *testing.M) {
	if os.Getenv("STORKCTL_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(repotest.MainWithCacheHome(m))
}

// TestKilledBackup kills (SIGKILL) `storkctl repo backup` once it has indexed some packs, then
// checks that the repository opens, shows no snapshot, and that the next backup reuses what the
// killed one uploaded.
func TestKilledBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 512 MiB")
	}
	dir := t.TempDir()
	src, bucket := filepath.Join(dir, "src"), filepath.Join(dir, "bucket")
	os.MkdirAll(src, 0o755)
	buf := make([]byte, 32<<20)
	for i := range 16 {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i))), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := repo.UserKey{Passphrase: "kill test passphrase"}
	ctx := context.Background()
	s, err := objstore.Open(ctx, objstore.Config{URL: "file://" + bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := repo.Init(ctx, s, key, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	cmd := exec.Command(os.Args[0], "repo", "backup", src, "--location", "file://"+bucket)
	cmd.Env = append(os.Environ(), "STORKCTL_AS_MAIN=1", "STORK_PASSPHRASE="+key.Passphrase)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for killed := false; !killed; {
		select {
		case err := <-exited:
			t.Fatalf("backup finished (%v) before any index file appeared to kill it at", err)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("no index file after 2 minutes")
		case <-time.After(5 * time.Millisecond):
			if idx, _ := filepath.Glob(filepath.Join(bucket, "index", "*")); len(idx) > 0 {
				cmd.Process.Kill()
				<-exited
				killed = true
			}
		}
	}

	r, err = repo.Open(ctx, s, key)
	if err != nil {
		t.Fatalf("repository after a killed backup: %v", err)
	}
	defer r.Close()
	if snaps, err := r.Snapshots(ctx); err != nil || len(snaps) != 0 {
		t.Fatalf("a killed backup left snapshots %v (%v)", snaps, err)
	}
	reusable := r.BlobCount()
	if reusable == 0 {
		t.Fatal("nothing the killed backup uploaded is indexed")
	}
	// The repository is valid: every index file and pack checks out; packs the killed backup
	// had not indexed yet are only noted, and prune removes them.
	if rep, err := archive.Check(ctx, r, repo.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check after a killed backup: %+v, %v", rep, err)
	}
	_, snap, err := archive.Backup(ctx, r, src, archive.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	total := int(snap.Summary.BlobsAdded) + reusable
	if int(snap.Summary.BlobsAdded) >= total || snap.Summary.BytesAdded >= 512<<20 {
		t.Errorf("the next backup added %d blobs, %d bytes: it did not reuse the %d blobs already uploaded",
			snap.Summary.BlobsAdded, snap.Summary.BytesAdded, reusable)
	}
	t.Logf("killed backup had indexed %d blobs; the next one added %d (%d MiB)", reusable, snap.Summary.BlobsAdded, snap.Summary.BytesAdded>>20)
}
