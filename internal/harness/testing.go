package harness

import (
	"os"
	"path/filepath"
	"testing"
)

// New returns an Env for a test and closes it when the test ends, failing the test if anything
// it started is left running. When the test failed, the tail of every log is printed. In -short
// mode (`make test-unit`) the test is skipped: these tests need the binaries of `make testbin`.
// STORK_KEEP_HARNESS=1 keeps the root directory for a look at logs and data.
func New(t testing.TB) *Env {
	t.Helper()
	e, err := NewEnv(RequireBinaries(t), "")
	if err != nil {
		t.Fatal(err)
	}
	e.KeepRoot = os.Getenv("STORK_KEEP_HARNESS") == "1"
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(e.Root, "logs", "*.log"))
			for _, l := range logs {
				t.Logf("--- last lines of %s:\n%s", filepath.Base(l), tailFile(l, 25))
			}
		}
		if err := e.Close(); err != nil {
			t.Errorf("closing the test environment: %v", err)
		}
		if e.KeepRoot {
			t.Logf("harness files kept in %s", e.Root)
		}
	})
	return e
}

// RequireBinaries returns the test binaries' directory, skipping the test in -short mode and
// failing it when $STORK_TESTBIN is missing or incomplete.
func RequireBinaries(t testing.TB) Binaries {
	t.Helper()
	return require(t, "a real control plane", FindBinaries)
}

// require skips the test in -short mode (it needs what), else returns what find finds or fails
// the test.
func require[T any](t testing.TB, what string, find func() (T, error)) T {
	t.Helper()
	if testing.Short() {
		t.Skip("needs " + what + ": run without -short (make test)")
	}
	found, err := find()
	if err != nil {
		t.Fatal(err)
	}
	return found
}
