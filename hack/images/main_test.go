package main

import (
	"context"
	"os/exec"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
	if len(first) != 2 || len(second) != 2 {
		t.Fatalf("images %v and %v", first, second)
	}
	for i := range first {
		if first[i].Ref != second[i].Ref || first[i].Digest != second[i].Digest {
			t.Errorf("build twice: %s %s, then %s %s", first[i].Ref, first[i].Digest, second[i].Ref, second[i].Digest)
		}
	}
	tag, _ := name.NewTag("docker.io/library/stork:test")
	img, err := tarball.ImageFromPath(first[1].Tarball, &tag)
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
