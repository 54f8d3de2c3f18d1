package catalog

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"stork.dev/stork/backup/engine/repo"
)

// Catalog is a repository seen as the store of Backups: everything the reconcilers need of
// one (write a Backup's objects and record, find what an earlier attempt wrote, list and read
// records, forget a Backup), and nothing about packs, indexes or trees. Of gives the real one;
// catalogtest an in-memory one, so that the reconcilers are tested without a bucket and the
// engine without Kubernetes.
type Catalog interface {
	Find(ctx context.Context, kind, uid string) (*repo.SnapshotInfo, error)
	WriteRecord(ctx context.Context, rec *Record) (repo.ID, error)
	WriteResources(ctx context.Context, rec *Record, objs []*unstructured.Unstructured) (repo.ID, error)
	ReadRecord(ctx context.Context, id repo.ID) (*Record, error)
	ReadResources(ctx context.Context, id repo.ID) ([]*unstructured.Unstructured, error)
	Records(ctx context.Context) ([]repo.SnapshotInfo, error)
	Forget(ctx context.Context, uid string) (int, error)
}

// Of is the Catalog of an open repository.
func Of(r *repo.Repository) Catalog { return repoCatalog{r} }

type repoCatalog struct{ r *repo.Repository }

func (c repoCatalog) Find(ctx context.Context, kind, uid string) (*repo.SnapshotInfo, error) {
	return Find(ctx, c.r, kind, uid)
}

func (c repoCatalog) WriteRecord(ctx context.Context, rec *Record) (repo.ID, error) {
	return WriteRecord(ctx, c.r, rec)
}

func (c repoCatalog) WriteResources(ctx context.Context, rec *Record, objs []*unstructured.Unstructured) (repo.ID, error) {
	return WriteResources(ctx, c.r, rec, objs)
}

func (c repoCatalog) ReadRecord(ctx context.Context, id repo.ID) (*Record, error) {
	return ReadRecord(ctx, c.r, id)
}

func (c repoCatalog) ReadResources(ctx context.Context, id repo.ID) ([]*unstructured.Unstructured, error) {
	return ReadResources(ctx, c.r, id)
}

func (c repoCatalog) Records(ctx context.Context) ([]repo.SnapshotInfo, error) {
	return Records(ctx, c.r)
}

func (c repoCatalog) Forget(ctx context.Context, uid string) (int, error) {
	return Forget(ctx, c.r, uid)
}
