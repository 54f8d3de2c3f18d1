package repotest

import (
	"context"
	"os"
	"testing"

	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// New initialises a repository with the passphrase in a new file:// store and returns it with
// the store's URL. Both are closed when the test ends.
func New(t testing.TB, passphrase string) (*repo.Repository, string) {
	t.Helper()
	ctx := context.Background()
	url := "file://" + t.TempDir()
	store, err := objstore.Open(ctx, objstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r, err := repo.Init(ctx, store, repo.UserKey{Passphrase: passphrase}, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, url
}

// MainWithCacheHome runs a package's tests with XDG_CACHE_HOME pointed at a new temporary
// directory, removed afterwards, and returns their exit code: the repository commands keep
// manifests in the user's cache directory, and the tests' (and the processes they start,
// which inherit it) go there instead.
func MainWithCacheHome(m *testing.M) int {
	cache, err := os.MkdirTemp("", "stork-test-cache-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(cache)
	os.Setenv("XDG_CACHE_HOME", cache)
	return m.Run()
}
