package main

import (
	"context"
	"os/exec"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"stork.dev/stork/internal/images"
)

// TestImagesReproducible builds the real images twice, binaries included, and expects the same
// digests; then checks what the stork image holds and runs.
func TestImagesReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary twice")
	}
	ctx := context.Background()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	_, first, err := run(ctx, t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := run(ctx, t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("images %v and %v", first, second)
	}
	for i := range first {
		if first[i].Ref != second[i].Ref || first[i].Digest != second[i].Digest {
			t.Errorf("build twice: %s %s, then %s %s", first[i].Ref, first[i].Digest, second[i].Ref, second[i].Digest)
		}
	}
	stork := slices.IndexFunc(first, func(w images.Written) bool { return w.Ref == "docker.io/library/stork:test" })
	if stork < 0 {
		t.Fatalf("no stork image in %v", first)
	}
	tag, _ := name.NewTag("docker.io/library/stork:test")
	img, err := tarball.ImageFromPath(first[stork].Tarball, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532" || cf.Config.Entrypoint[0] != "/stork" ||
		cf.Config.Labels["org.opencontainers.image.version"] != "test" || len(cf.Config.Labels["org.opencontainers.image.revision"]) < 7 {
		t.Fatalf("stork image config %+v", cf.Config)
	}
}
