package scratchfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Mount makes a 1 GiB file system of the kind fs ("xfs" or "btrfs") in an image file under
// t.TempDir, mounts it for the test's duration and returns where. The test is skipped when not
// run as root or when the mkfs tool is missing.
func Mount(t testing.TB, fs string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mounting a scratch file system needs root")
	}
	mkfs, err := exec.LookPath("mkfs." + fs)
	if err != nil {
		t.Skipf("mkfs.%s is not installed (hack/node-deps.sh installs it)", fs)
	}
	args, ok := map[string][]string{"xfs": {"-q", "-f", "-m", "reflink=1"}, "btrfs": {"-q", "-f"}}[fs]
	if !ok {
		t.Fatalf("scratchfs: unknown file system %q", fs)
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, fs+".img"), filepath.Join(dir, "mnt")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.%s: %v: %s", fs, err, out)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mounting a %s image: %v: %s", fs, err, out)
	}
	// Registered after TempDir's, so it runs before the directory is removed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}
