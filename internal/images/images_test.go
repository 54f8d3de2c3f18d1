package images

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testImage builds a small image of a file with content, on the base.
func testImage(t *testing.T, content string) v1.Image {
	t.Helper()
	src := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	base, err := Base("")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Image(base, []File{{Path: "/usr/bin/app", Mode: 0o755, Source: src}}, "app",
		Config{Entrypoint: []string{"/usr/bin/app"}, Labels: map[string]string{"org.opencontainers.image.version": "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// entries lists a layer's tar headers.
func entries(t *testing.T, l v1.Layer) []*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []*tar.Header
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}

func TestReproducible(t *testing.T) {
	a, b := testImage(t, "binary v1"), testImage(t, "binary v1")
	if digest(t, a) != digest(t, b) {
		t.Fatalf("same content, digests %s and %s", digest(t, a), digest(t, b))
	}
	if c := testImage(t, "binary v2"); digest(t, c) == digest(t, a) {
		t.Fatal("other content, same digest")
	}
}

func TestImageContents(t *testing.T) {
	img := testImage(t, "binary v1")
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532" || cf.Config.Entrypoint[0] != "/usr/bin/app" || cf.Config.Labels["org.opencontainers.image.version"] != "v1" ||
		cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(epoch) {
		t.Fatalf("config %+v", cf)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	want := map[string]struct {
		mode int64
		typ  byte
	}{
		"etc/passwd": {0o644, tar.TypeReg}, "tmp/": {0o1777, tar.TypeDir}, "usr/": {0o755, tar.TypeDir}, "usr/bin/app": {0o755, tar.TypeReg},
	}
	seen := map[string]bool{}
	for _, l := range layers {
		prev := ""
		for _, h := range entries(t, l) {
			if h.Name < prev {
				t.Errorf("entries not sorted: %s after %s", h.Name, prev)
			}
			prev = h.Name
			if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) {
				t.Errorf("%s: owner %d:%d, time %s", h.Name, h.Uid, h.Gid, h.ModTime)
			}
			if w, ok := want[h.Name]; ok {
				seen[h.Name] = true
				if h.Mode != w.mode || h.Typeflag != w.typ {
					t.Errorf("%s: mode %o type %c, want %o %c", h.Name, h.Mode, h.Typeflag, w.mode, w.typ)
				}
			}
		}
	}
	if len(seen) != len(want) {
		t.Errorf("found %v of %v", seen, want)
	}
}

func TestLayerRejectsRelativePaths(t *testing.T) {
	if _, err := Layer([]File{{Path: "etc/passwd", Mode: 0o644}}); err == nil {
		t.Fatal("a relative path was accepted")
	}
}

// TestWriteAndPush writes the layout and tarballs twice (same bytes), reads both back, and
// pushes to a registry server on a loopback port, then pulls the image back by digest.
func TestWriteAndPush(t *testing.T) {
	imgs := []Named{{Ref: "docker.io/library/app:v1", Image: testImage(t, "binary v1")}}
	dir1, dir2 := t.TempDir(), t.TempDir()
	w1, err := Write(dir1, imgs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir2, imgs); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"app.tar", "oci/index.json"} {
		a, _ := os.ReadFile(filepath.Join(dir1, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s differs between two writes (%d and %d bytes)", f, len(a), len(b))
		}
	}
	tag, _ := name.NewTag("docker.io/library/app:v1")
	// A docker-archive tarball carries the config and layers, not the OCI manifest: compare
	// the config.
	fromTar, err := tarball.ImageFromPath(w1[0].Tarball, &tag)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fromTar.ConfigName()
	want, _ := imgs[0].Image.ConfigName()
	if got != want {
		t.Fatalf("tarball config %s, image config %s", got, want)
	}
	lp, err := layout.FromPath(filepath.Join(dir1, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lp.Image(w1[0].Digest); err != nil {
		t.Fatalf("the layout has no image %s: %v", w1[0].Digest, err)
	}

	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	refs, err := Push(context.Background(), u.Host+"/stork", imgs)
	if err != nil || len(refs) != 1 {
		t.Fatalf("push: %v %v", refs, err)
	}
	ref, err := name.ParseReference(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	if digest(t, pulled) != w1[0].Digest {
		t.Fatalf("pulled %s, pushed %s", digest(t, pulled), w1[0].Digest)
	}
	if _, err := Push(context.Background(), "not a registry!", imgs); err == nil {
		t.Fatal("a bad registry was accepted")
	}
}
