package repotest

import (
	"context"
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
