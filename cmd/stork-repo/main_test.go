package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStandalone runs the repository commands at the top level, as a rescue host would, and
// checks that what they tell the user to run next names this command, not storkctl's.
func TestStandalone(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	t.Setenv("STORK_PASSPHRASE", "standalone passphrase")
	src, bucket := filepath.Join(dir, "src"), filepath.Join(dir, "bucket")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("rescue me"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--location", "file://"+bucket))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	for _, args := range [][]string{{"init"}, {"backup", src}} {
		if out, err := run(args...); err != nil {
			t.Fatalf("stork-repo %v: %v\n%s", args, err, out)
		}
	}
	// A damaged index file is skipped with a warning that says which check to run.
	idx, err := filepath.Glob(filepath.Join(bucket, "index", "*"))
	if err != nil || len(idx) != 1 {
		t.Fatalf("index files %v, %v: want 1", idx, err)
	}
	if err := os.WriteFile(idx[0], []byte("not an index"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run("ls")
	if err != nil || !strings.Contains(out, "warning: skipped") || !strings.Contains(out, "(run stork-repo check)") {
		t.Errorf("ls with a damaged index: %v\n%s\nwant a warning that names `stork-repo check`", err, out)
	}
	if out, err := run("check"); err == nil || !strings.Contains(out, filepath.Base(idx[0])) {
		t.Errorf("check: %v\n%s\nwant a failure naming %s", err, out, filepath.Base(idx[0]))
	}
}
