package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"stork.dev/stork/internal/images"
	storkversion "stork.dev/stork/internal/version"
)

// caBundle is Debian's CA bundle; images get it when the build machine has it.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

func main() {
	out := flag.String("out", "bin/images", "directory for the OCI layout and the tarballs")
	version := flag.String("version", "dev", "version: the images' tag and the binaries' version")
	push := flag.String("push", "", "also push the images to this registry (host[:port][/prefix])")
	flag.Parse()
	ctx := context.Background()
	imgs, written, err := run(ctx, *out, *version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	for _, w := range written {
		fmt.Printf("%s %s %s\n", w.Ref, w.Digest, w.Tarball)
	}
	if *push == "" {
		return
	}
	// go-containerregistry speaks plain HTTP only to localhost and 127.0.0.1 registries.
	refs, err := images.Push(ctx, *push, imgs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	for _, r := range refs {
		fmt.Println("pushed", r)
	}
}

// run builds the binaries and the images and writes them into out.
func run(ctx context.Context, out, version string) ([]images.Named, []images.Written, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, nil, err
	}
	bin, err := os.MkdirTemp("", "stork-images-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(bin)
	if err := buildBinaries(ctx, bin, version); err != nil {
		return nil, nil, err
	}
	imgs, err := build(bin, version, gitRevision(ctx))
	if err != nil {
		return nil, nil, err
	}
	written, err := images.Write(out, imgs)
	return imgs, written, err
}

// build makes the images from the binaries in bin.
func build(bin, version, revision string) ([]images.Named, error) {
	ca := caBundle
	if _, err := os.Stat(ca); err != nil {
		ca = ""
	}
	base, err := images.Base(ca)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":    "stork",
		"org.opencontainers.image.source":   "stork.dev/stork",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": revision,
	}
	var files []images.File
	for _, b := range []string{"stork", "stork-agent", "storkctl"} {
		files = append(files, images.File{Path: "/" + b, Mode: 0o755, Source: filepath.Join(bin, b)})
	}
	stork, err := images.Image(base, files, "stork binaries", images.Config{Entrypoint: []string{"/stork"}, Labels: labels})
	if err != nil {
		return nil, err
	}
	pause, err := images.Image(base, []images.File{{Path: "/pause", Mode: 0o755, Source: filepath.Join(bin, "pause")}},
		"pod sandbox process", images.Config{Entrypoint: []string{"/pause"}, Labels: titled(labels, "stork-pause")})
	if err != nil {
		return nil, err
	}
	// The application of the real-node tests (hack/images/testapp); not for users.
	app, err := images.Image(base, []images.File{{Path: "/testapp", Mode: 0o755, Source: filepath.Join(bin, "testapp")}},
		"test application", images.Config{Entrypoint: []string{"/testapp"}, Labels: titled(labels, "stork-testapp")})
	if err != nil {
		return nil, err
	}
	return []images.Named{{Ref: ref("stork", version), Image: stork}, {Ref: ref("stork-pause", version), Image: pause},
		{Ref: ref("stork-testapp", version), Image: app}}, nil
}

// titled returns labels with another image title.
func titled(labels map[string]string, title string) map[string]string {
	out := maps.Clone(labels)
	out["org.opencontainers.image.title"] = title
	return out
}

// ref is the reference an image is known by on a node: manifests name it "stork:dev", which
// resolves to docker.io/library/stork:dev.
func ref(repo, version string) string {
	return "docker.io/library/" + repo + ":" + version
}

// buildBinaries compiles static, reproducible binaries into dir.
func buildBinaries(ctx context.Context, dir, version string) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-tags=" + storkversion.BuildTags,
		"-ldflags", "-s -w -buildid= -X stork.dev/stork/internal/version.Version=" + version, "-o", dir + "/",
		"./cmd/stork", "./cmd/stork-agent", "./cmd/storkctl", "./hack/images/pause", "./hack/images/testapp"}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("finding the module: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// gitRevision is the commit the source is at, "unknown" outside a checkout.
func gitRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
