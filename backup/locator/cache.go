package locator

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/backup/engine/access"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
)

// Cache keeps the repositories of locations open in the controller, so that the Backup,
// sync and Restore controllers do not read a repository's whole index on every reconcile: a
// repository is opened once per location and its index refreshed (new index files only) on
// each use. A location whose Secrets changed is opened again. Entries live as long as the
// process: there is one per location.
type Cache struct {
	// Secrets reads the Secrets locations name (an uncached reader).
	Secrets client.Reader

	mu   sync.Mutex
	open map[string]*openRepo // location UID → repository
}

type openRepo struct {
	mu     sync.Mutex
	access [32]byte // hash of the Access it was opened with
	store  *objstore.Store
	r      *repo.Repository
}

// repository returns the location's repository, opened or refreshed. The caller must not close it.
func (c *Cache) repository(ctx context.Context, loc *storkv1.BackupLocation) (*repo.Repository, error) {
	a, err := Resolve(ctx, c.Secrets, loc)
	if err != nil {
		return nil, err
	}
	sum := accessHash(a)
	o := c.entry(loc)
	// One lock per location: a slow or unreachable store delays only its own usec.
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.r != nil && o.access == sum {
		if err := o.r.RefreshIndex(ctx); err != nil {
			return nil, fmt.Errorf("reading the index of the repository in %s: %w", loc.Spec.URL, err)
		}
		return o.r, nil
	}
	// A repository opened with other Secrets is dropped, not closed: another reconcile may
	// still be using it, and Secrets change rarely.
	store, r, err := a.Open(ctx)
	if err != nil {
		return nil, err
	}
	o.access, o.store, o.r = sum, store, r
	return r, nil
}

func (c *Cache) entry(loc *storkv1.BackupLocation) *openRepo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = map[string]*openRepo{}
	}
	o := c.open[string(loc.UID)]
	if o == nil {
		o = &openRepo{}
		c.open[string(loc.UID)] = o
	}
	return o
}

// accessHash identifies an Access without keeping its secrets in a comparable form.
func accessHash(a access.Access) [32]byte {
	d := access.SecretData(a)
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%d:", k, len(d[k]))
		h.Write(d[k])
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Catalogs opens the catalog of a location's repository: what the reconcilers hold instead of
// a Cache, so that their tests can give them an in-memory catalog (catalogtest).
type Catalogs interface {
	Catalog(ctx context.Context, loc *storkv1.BackupLocation) (catalog.Catalog, error)
}

// Catalog returns the catalog of the location's repository, opened or refreshed.
func (c *Cache) Catalog(ctx context.Context, loc *storkv1.BackupLocation) (catalog.Catalog, error) {
	r, err := c.repository(ctx, loc)
	if err != nil {
		return nil, err
	}
	return catalog.Of(r), nil
}
