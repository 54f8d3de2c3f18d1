package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user the images run as (the UID distroless calls nonroot).
const (
	NonRootUID  = 65532
	NonRootName = "nonroot"
)

// epoch is the time of every file and of every image config: images depend on their content only.
var epoch = time.Unix(0, 0).UTC()

// File is one file of a layer.
type File struct {
	Path string      // absolute path in the image
	Mode os.FileMode // permission bits; os.ModeDir for a directory
	Data []byte      // content, for regular files
	// Source, when set, is a file on this machine read for the content instead of Data.
	Source string
}

// Layer makes a reproducible layer of files: parent directories added, entries sorted, every
// entry owned by root with the epoch as its time.
func Layer(files []File) (v1.Layer, error) {
	dirs := map[string]bool{}
	var all []File
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("layer file %q: the path must be absolute", f.Path)
		}
		for d := path.Dir(f.Path); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			all = append(all, File{Path: d, Mode: os.ModeDir | 0o755})
		}
		if f.Mode.IsDir() {
			if dirs[f.Path] {
				// An explicit directory replaces the implied one (a sticky /tmp).
				for i := range all {
					if all[i].Path == f.Path {
						all[i] = f
					}
				}
				continue
			}
			dirs[f.Path] = true
		}
		all = append(all, f)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Path < all[j].Path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range all {
		hdr := &tar.Header{Name: f.Path[1:], ModTime: epoch, Mode: int64(f.Mode.Perm()), Format: tar.FormatPAX}
		if f.Mode&os.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		data := f.Data
		switch {
		case f.Mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case f.Source != "":
			var err error
			if data, err = os.ReadFile(f.Source); err != nil {
				return nil, fmt.Errorf("reading %s for %s: %w", f.Source, f.Path, err)
			}
			fallthrough
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// Base is the minimal base: the non-root user, /tmp, and the CA bundle at caBundle (the
// build machine's, e.g. Debian's /etc/ssl/certs/ca-certificates.crt; "" for none), so that
// Stork reaches cloud object stores over TLS.
func Base(caBundle string) (v1.Image, error) {
	files := []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", NonRootName, NonRootUID, NonRootUID, NonRootName, NonRootName)},
		{Path: "/etc/group", Mode: 0o644, Data: fmt.Appendf(nil, "root:x:0:\n%s:x:%d:\n", NonRootName, NonRootUID)},
		{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte("hosts: files dns\n")},
		{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
		{Path: "/home/" + NonRootName, Mode: os.ModeDir | 0o755},
	}
	if caBundle != "" {
		files = append(files, File{Path: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Source: caBundle})
	}
	layer, err := Layer(files)
	if err != nil {
		return nil, fmt.Errorf("making the base layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "stork base: users, /tmp, CA bundle"}})
	if err != nil {
		return nil, err
	}
	return configure(img, Config{User: fmt.Sprint(NonRootUID)})
}

// Config is what an image runs and says about itself.
type Config struct {
	Entrypoint []string
	Env        []string
	User       string
	WorkingDir string
	Labels     map[string]string
}

// Image puts files on base as one layer and sets its config.
func Image(base v1.Image, files []File, what string, cfg Config) (v1.Image, error) {
	layer, err := Layer(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: what}})
	if err != nil {
		return nil, err
	}
	return configure(img, cfg)
}

func configure(img v1.Image, c Config) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	if c.User != "" {
		cf.Config.User = c.User
	}
	if c.Entrypoint != nil {
		cf.Config.Entrypoint = c.Entrypoint
	}
	if c.WorkingDir != "" {
		cf.Config.WorkingDir = c.WorkingDir
	}
	if len(c.Env) > 0 {
		cf.Config.Env = c.Env
	}
	if len(c.Labels) > 0 {
		cf.Config.Labels = c.Labels
	}
	return mutate.ConfigFile(img, cf)
}
