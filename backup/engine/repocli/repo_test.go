package repocli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/repo/repotest"
)

func TestMain(m *testing.M) { os.Exit(repotest.MainWithCacheHome(m)) }

// storkctl runs the commands as `storkctl repo` does.
func storkctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "storkctl", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(Command())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestRepoCommands drives init, backup, ls and restore the way a person would at a break-glass
// restore, against a file:// repository.
func TestRepoCommands(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "db/table"), bytes.Repeat([]byte("row\n"), 10000), 0o640); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("a long enough passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repoFlags := []string{"--location", "file://" + filepath.Join(dir, "bucket"), "--passphrase-file", passFile}
	run := func(args ...string) string {
		t.Helper()
		out, err := storkctl(t, append(append([]string{"repo"}, args...), repoFlags...)...)
		if err != nil {
			t.Fatalf("storkctl repo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	if out, err := storkctl(t, "repo", "ls", "--location", "file://"+filepath.Join(dir, "bucket"), "--passphrase-file", passFile); err == nil ||
		!strings.Contains(err.Error(), "no repository here") {
		t.Fatalf("ls before init: %v %s", err, out)
	}
	if out := run("init"); !strings.Contains(out, "created repository") {
		t.Fatalf("init said %q", out)
	}
	out := run("backup", src, "--tag", "pvc=data")
	firstOut := out
	if !regexp.MustCompile(`snapshot [0-9a-f]{12} saved: 1 files, [^(]+ \(0 unchanged, 0 B not read, [^)]+ read\)`).MatchString(out) {
		t.Fatalf("first backup said %q", out)
	}
	out = run("backup", src)
	if !strings.Contains(out, "0 B new") {
		t.Fatalf("second backup should reuse the unchanged file: %q", out)
	}
	if m := regexp.MustCompile(`1 files, ([^(]+) \(1 unchanged, ([^,]+) not read, 0 B read\)`).FindStringSubmatch(out); m == nil || m[1] != m[2] || m[1] == "0 B" {
		t.Fatalf("the unchanged file's bytes should all be skipped: %q", out)
	}
	if out := run("backup", src, "--strict-change-detection"); !regexp.MustCompile(`\(0 unchanged, 0 B not read, [^)]+ read\), 0 B new`).MatchString(out) {
		t.Fatalf("a strict backup reads the file again (and stores nothing new): %q", out)
	}
	// A copy elsewhere (the next snapshot of a volume) names its parent: its files are not read.
	first := regexp.MustCompile(`snapshot ([0-9a-f]{12}) saved`).FindStringSubmatch(firstOut)[1]
	copied := filepath.Join(dir, "copy")
	if out, err := exec.Command("cp", "-a", src, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if out := run("backup", copied, "--parent", first); !strings.Contains(out, "(1 unchanged") || !strings.Contains(out, ", 0 B read)") {
		t.Fatalf("a copy backed up with --parent %s should read nothing: %q", first, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--parent", "ffffffffffff"}, "--parent: "},
		{[]string{"--parent", first, "--no-parent"}, "--parent and --no-parent contradict"},
	} {
		if out, err := storkctl(t, append(append([]string{"repo", "backup", copied}, c.args...), repoFlags...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("backup %v: %v %s; want an error saying %q", c.args, err, out, c.want)
		}
	}
	if out := run("ls"); strings.Count(out, src) != 3 || !strings.Contains(out, "pvc=data") {
		t.Fatalf("ls said %q", out)
	}
	// The four manifests are kept in the user's cache (TestMain points XDG_CACHE_HOME at a
	// temporary directory), under --cache-dir if given, and nowhere with --no-cache.
	cached := func(root string) int {
		m, _ := filepath.Glob(filepath.Join(root, "*", "snapshots", "*"))
		return len(m)
	}
	if n := cached(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "stork", "repos")); n != 4 {
		t.Errorf("%d manifests in the default cache, want 4", n)
	}
	run("ls", "--cache-dir", filepath.Join(dir, "cache"))
	if n := cached(filepath.Join(dir, "cache")); n != 4 {
		t.Errorf("%d manifests under --cache-dir, want 4", n)
	}
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "xdg"))
	run("ls", "--no-cache")
	if n := cached(filepath.Join(dir, "xdg", "stork", "repos")); n != 0 {
		t.Errorf("%d manifests cached with --no-cache, want 0", n)
	}
	if out := run("ls", "latest"); !strings.Contains(out, "db/table") {
		t.Fatalf("ls latest said %q", out)
	}
	// Break-glass by tags: the newest backup of claim "data", whatever came after it.
	if err := os.WriteFile(filepath.Join(src, "db/table"), []byte("changed later\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	run("backup", src, "--tag", "pvc=other")
	if out := run("ls", "--tag", "pvc=data"); strings.Count(out, src) != 1 || strings.Contains(out, "pvc=other") {
		t.Fatalf("ls --tag pvc=data said %q", out)
	}
	if out, err := storkctl(t, append([]string{"repo", "restore", "latest", filepath.Join(dir, "none"), "--tag", "pvc=nope"}, repoFlags...)...); err == nil ||
		!strings.Contains(err.Error(), "no snapshot carries the tags [pvc=nope]") {
		t.Fatalf("restore of an unknown tag: %v %s", err, out)
	}
	target := filepath.Join(dir, "restored")
	// An index budget of one blob: the restore finds its blobs through an index spilled to disk.
	if out := run("restore", "latest", target, "--tag", "pvc=data", "--index-memory", "100", "--verify"); !strings.Contains(out, "verified 1 files") {
		t.Fatalf("restore --verify said %q", out)
	}
	got, err := os.ReadFile(filepath.Join(target, "db/table"))
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("row\n"), 10000)) {
		t.Fatalf("restored file differs: %v", err)
	}
	// Into a target that holds something else: verification names it and fails.
	junk := filepath.Join(dir, "with-junk")
	os.MkdirAll(junk, 0o700)
	os.WriteFile(filepath.Join(junk, "stray"), []byte("x"), 0o600)
	if out, err := storkctl(t, append([]string{"repo", "restore", "latest", junk, "--tag", "pvc=data", "--verify"}, repoFlags...)...); err == nil ||
		!strings.Contains(err.Error(), "stray: is not in the backup") {
		t.Fatalf("restore --verify into a directory with a stray file: %v %s", err, out)
	}
	if _, err := storkctl(t, append([]string{"repo", "restore", "latest", junk, "--include", "db", "--verify"}, repoFlags...)...); err == nil ||
		!strings.Contains(err.Error(), "--verify compares the whole snapshot") {
		t.Fatalf("--verify with --include: %v", err)
	}
	// File-level restore: --path restores one file of the volume; a path that is not there is named.
	partial := filepath.Join(dir, "partial")
	if out := run("restore", "latest", partial, "--tag", "pvc=data", "--path", "db/table"); !strings.Contains(out, "restored snapshot") {
		t.Fatalf("restore --path said %q", out)
	}
	if got, err := os.ReadFile(filepath.Join(partial, "db/table")); err != nil || len(got) != 40000 {
		t.Fatalf("restore --path db/table: %d bytes, %v", len(got), err)
	}
	if _, err := storkctl(t, append([]string{"repo", "restore", "latest", partial, "--tag", "pvc=data", "--path", "db/missing"}, repoFlags...)...); err == nil ||
		!strings.Contains(err.Error(), `path "db/missing" is not in the snapshot`) {
		t.Fatalf("restore --path of a missing file: %v", err)
	}

	if out, err := storkctl(t, append([]string{"repo", "ls", "--index-memory", "lots"}, repoFlags...)...); err == nil ||
		!strings.Contains(err.Error(), `--index-memory "lots"`) {
		t.Fatalf("ls with a bad --index-memory: %v %s", err, out)
	}

	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("not the passphrase"), 0o600)
	if _, err := storkctl(t, "repo", "ls", "--location", "file://"+filepath.Join(dir, "bucket"), "--passphrase-file", wrong); err == nil ||
		!strings.Contains(err.Error(), "wrong key") {
		t.Fatalf("ls with a wrong passphrase: %v", err)
	}
	if _, err := storkctl(t, "repo", "ls", "--location", "file://"+filepath.Join(dir, "bucket")); err == nil ||
		!strings.Contains(err.Error(), "there is no default key") {
		t.Fatalf("ls without a key: %v", err)
	}
}

// TestMaintenanceCommands: forget by policy and by ID, prune, and check, as an operator would.
func TestMaintenanceCommands(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	passFile := filepath.Join(dir, "pass")
	os.WriteFile(passFile, []byte("a long enough passphrase\n"), 0o600)
	bucket := filepath.Join(dir, "bucket")
	repoFlags := []string{"--location", "file://" + bucket, "--passphrase-file", passFile}
	run := func(args ...string) (string, error) {
		t.Helper()
		return storkctl(t, append(append([]string{"repo"}, args...), repoFlags...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("storkctl repo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("init")
	var ids []string
	for i := range 3 {
		// Incompressible content, different each time, so each backup adds its own pack.
		data := make([]byte, 2<<20)
		for j := range data {
			data[j] = byte((j*7919 + i*104729) ^ (j >> 7) ^ (j * j >> 11))
		}
		os.WriteFile(filepath.Join(src, "data"), data, 0o644)
		out := must("backup", src)
		ids = append(ids, regexp.MustCompile(`snapshot ([0-9a-f]{12}) saved`).FindStringSubmatch(out)[1])
	}
	if out, err := run("forget"); err == nil {
		t.Fatalf("forget with neither IDs nor a policy: %s", out)
	}
	out := must("forget", "--keep-last", "2", "--dry-run")
	if !strings.Contains(out, "would forget snapshot "+ids[0]) || strings.Contains(out, "would forget snapshot "+ids[1]) {
		t.Fatalf("forget --keep-last 2 --dry-run said %q", out)
	}
	out = must("forget", "--keep-last", "2")
	if !strings.Contains(out, "forgot snapshot "+ids[0]) || !strings.Contains(out, "keep (last 1)") {
		t.Fatalf("forget --keep-last 2 said %q", out)
	}
	out = must("prune", "--grace", "1h")
	if !strings.Contains(out, "not deleted yet") || !regexp.MustCompile(`marked [1-9]\d* packs`).MatchString(out) {
		t.Fatalf("prune within the grace period said %q", out)
	}
	out = must("forget", ids[1], "--prune", "--grace", "0", "--clock-skew", "0")
	if !strings.Contains(out, "forgot snapshot "+ids[1]) || !regexp.MustCompile(`deleted [2-9]\d* packs`).MatchString(out) {
		t.Fatalf("forget ID --prune said %q", out)
	}
	out = must("check", "--read-data")
	if !strings.Contains(out, "checked 1 snapshots") || !strings.Contains(out, "no problems found") {
		t.Fatalf("check said %q", out)
	}
	must("restore", ids[2], filepath.Join(dir, "restored"))

	// Damage every pack: check --read-data names them and exits non-zero.
	filepath.Walk(filepath.Join(bucket, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			b[len(b)/3] ^= 1
			os.WriteFile(p, b, 0o600)
		}
		return nil
	})
	out, err := run("check", "--read-data")
	if err == nil || !regexp.MustCompile(`problem: damaged object data/[0-9a-f]{2}/[0-9a-f]{64}`).MatchString(out) {
		t.Fatalf("check of damaged packs: %v\n%s", err, out)
	}
}

// TestRepoBackups lists the Stork Backups a cluster wrote, from their records alone.
func TestRepoBackups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	url := "file://" + filepath.Join(dir, "bucket")
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("a long enough passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := storkctl(t, "repo", "init", "--location", url, "--passphrase-file", passFile); err != nil {
		t.Fatalf("init: %v %s", err, out)
	}
	store, err := objstore.Open(ctx, objstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := repo.Open(ctx, store, repo.UserKey{Passphrase: "a long enough passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec := &catalog.Record{Name: "nightly", Namespace: "shop", UID: "u1", Cluster: "site-a", Phase: storkv1.BackupCompleted, ResourceCount: 7,
		Volumes: []storkv1.BackupVolume{
			{ClaimName: "data-0", Topology: storkv1.Topology{Zone: "zone-a"}, RepositorySnapshotID: "0123456789abcdef", Progress: storkv1.Progress{BytesTotal: 2 << 20}},
			{ClaimName: "data-1", Message: "disk gone"}}}
	if _, err := catalog.WriteRecord(ctx, r, rec); err != nil {
		t.Fatal(err)
	}
	out, err := storkctl(t, "repo", "backups", "--location", url, "--passphrase-file", passFile)
	if err != nil {
		t.Fatalf("backups: %v %s", err, out)
	}
	for _, want := range []string{`shop/nightly\s+site-a\s+\S+\s+Completed\s+7\s+data-0\s+zone-a\s+2\.0 MiB\s+0123456789ab`, `data-1\s+0 B\s+\(failed: disk gone\)`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
