package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Named is an image with the reference it is known by, e.g. "stork.dev/stork:v0.1.0".
type Named struct {
	Ref   string
	Image v1.Image
}

// Written is what Write made of one image.
type Written struct {
	Ref     string
	Digest  v1.Hash
	Tarball string
}

// Write writes the images into dir: an OCI layout (dir/oci, one manifest per image, named by
// its reference in the annotation org.opencontainers.image.ref.name) and a tarball per image
// (dir/NAME.tar, the format `ctr images import` and `docker load` read). The layout is made
// afresh, so that writing twice gives the same files.
func Write(dir string, imgs []Named) ([]Written, error) {
	ociDir := filepath.Join(dir, "oci")
	if err := os.RemoveAll(ociDir); err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json")
	var out []Written
	for _, n := range imgs {
		ref, err := name.ParseReference(n.Ref)
		if err != nil {
			return nil, fmt.Errorf("image reference %q: %w", n.Ref, err)
		}
		digest, err := n.Image.Digest()
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: n.Image, Descriptor: v1.Descriptor{
			Annotations: map[string]string{"org.opencontainers.image.ref.name": ref.String()}}})
		file := filepath.Join(dir, tarName(ref))
		if err := tarball.WriteToFile(file, ref, n.Image); err != nil {
			return nil, fmt.Errorf("writing %s: %w", file, err)
		}
		out = append(out, Written{Ref: ref.String(), Digest: digest, Tarball: file})
	}
	if _, err := layout.Write(ociDir, idx); err != nil {
		return nil, fmt.Errorf("writing the OCI layout %s: %w", ociDir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// tarName is the tarball of an image: its repository's last element.
func tarName(ref name.Reference) string {
	return filepath.Base(ref.Context().RepositoryStr()) + ".tar"
}

// Push pushes each image to registry (host[:port][/prefix]) under its repository's last
// element and tag: stork.dev/stork:v1 goes to REGISTRY/stork:v1. It returns the references
// pushed, by digest.
func Push(ctx context.Context, registry string, imgs []Named, opts ...remote.Option) ([]string, error) {
	var out []string
	for _, n := range imgs {
		src, err := name.NewTag(n.Ref)
		if err != nil {
			return nil, fmt.Errorf("image reference %q: %w", n.Ref, err)
		}
		dst, err := name.NewTag(registry + "/" + filepath.Base(src.RepositoryStr()) + ":" + src.TagStr())
		if err != nil {
			return nil, fmt.Errorf("--push %s: %w", registry, err)
		}
		if err := remote.Write(dst, n.Image, append(opts, remote.WithContext(ctx))...); err != nil {
			return nil, fmt.Errorf("pushing %s: %w", dst, err)
		}
		digest, err := n.Image.Digest()
		if err != nil {
			return nil, err
		}
		out = append(out, dst.Context().Digest(digest.String()).String())
	}
	return out, nil
}
