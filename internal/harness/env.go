package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries is the directory built by hack/testbin.sh (make testbin).
type Binaries string

// EnvBinaries names the variable that points the harness at the test binaries.
const EnvBinaries = "STORK_TESTBIN"

var requiredBinaries = []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubectl", "minio"}

// FindBinaries returns the directory named by $STORK_TESTBIN after checking that every binary
// the harness runs is in it.
func FindBinaries() (Binaries, error) {
	dir, err := findBuilt(EnvBinaries, "hack/testbin.sh", requiredBinaries)
	return Binaries(dir), err
}

// findBuilt returns the directory the environment variable names after checking that it holds
// every required entry; build is the command that makes it, for the error message.
func findBuilt(variable, build string, required []string) (string, error) {
	dir := os.Getenv(variable)
	if dir == "" {
		return "", fmt.Errorf("%s is not set: run the tests with `make test`, or build with `%s` and export %s to the directory it prints", variable, build, variable)
	}
	for _, b := range required {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s=%s lacks %s (%v): rebuild with `%s`", variable, dir, b, err, build)
		}
	}
	return dir, nil
}

// Path returns the path of one binary.
func (b Binaries) Path(name string) string { return filepath.Join(string(b), name) }

// CSIBinaries is the directory built by `hack/testbin.sh csi`: the CSI sidecars and, in crds/,
// the snapshot CRDs of the same release. It is apart from Binaries so that the CSI pins can
// change without a rebuild of the control plane.
type CSIBinaries string

// EnvCSIBinaries names the variable that points the harness at the CSI sidecars.
const EnvCSIBinaries = "STORK_CSI_TESTBIN"

var requiredCSIBinaries = []string{"csi-provisioner", "csi-snapshotter", "snapshot-controller", "crds"}

// FindCSIBinaries returns the directory named by $STORK_CSI_TESTBIN after checking that every
// sidecar the harness runs, and the CRD directory, is in it.
func FindCSIBinaries() (CSIBinaries, error) {
	dir, err := findBuilt(EnvCSIBinaries, "hack/testbin.sh csi", requiredCSIBinaries)
	return CSIBinaries(dir), err
}

// RequireCSIBinaries returns the CSI sidecars' directory, skipping the test in -short mode and
// failing it when $STORK_CSI_TESTBIN is missing or incomplete.
func RequireCSIBinaries(t testing.TB) CSIBinaries {
	t.Helper()
	return require(t, "a real control plane and CSI sidecars", FindCSIBinaries)
}

// Path returns the path of one sidecar.
func (b CSIBinaries) Path(name string) string { return filepath.Join(string(b), name) }

// CRDs returns the directory of the snapshot CRDs.
func (b CSIBinaries) CRDs() string { return filepath.Join(string(b), "crds") }

// EnvHelm names the variable that points the harness at `hack/testbin.sh helm`'s directory.
const EnvHelm = "STORK_HELM_TESTBIN"

// FindHelm returns the path of the helm command in $STORK_HELM_TESTBIN.
func FindHelm() (string, error) {
	dir, err := findBuilt(EnvHelm, "hack/testbin.sh helm", []string{"helm"})
	return filepath.Join(dir, "helm"), err
}

// RequireHelm returns the path of the helm command, skipping the test in -short mode and
// failing it when $STORK_HELM_TESTBIN is missing or incomplete.
func RequireHelm(t testing.TB) string {
	t.Helper()
	return require(t, "helm", FindHelm)
}

// EnvImages names the variable that points the harness at the directory of `make images`.
const EnvImages = "STORK_IMAGES"

// imageTarballs are the images of `make images` that real nodes import.
var imageTarballs = []string{"stork.tar", "stork-pause.tar", "stork-testapp.tar"}

// FindImages returns the image tarballs of `make images` in $STORK_IMAGES (bin/images), for
// RealNodeOptions.Images.
func FindImages() ([]string, error) {
	dir, err := findBuilt(EnvImages, "make images", imageTarballs)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range imageTarballs {
		out = append(out, filepath.Join(dir, name))
	}
	return out, nil
}

// Env owns everything one test (or the demo) starts: clusters, object stores and other
// processes, all with their files under one root directory. Close stops all of it; if the
// owning process dies first, a watchdog does.
type Env struct {
	Root string
	Bins Binaries
	// KeepRoot leaves the root directory (logs, data) in place after Close.
	KeepRoot bool

	watchdog *exec.Cmd

	mu       sync.Mutex
	procs    []*Process
	closers  []func() error
	closed   bool
	portsMu  sync.Mutex
	given    map[int]bool
	nameSeen map[string]bool
}

// NewEnv makes a root directory under parent (os.TempDir() when empty) and starts its watchdog.
func NewEnv(bins Binaries, parent string) (*Env, error) {
	root, err := os.MkdirTemp(parent, "stork-harness-")
	if err != nil {
		return nil, fmt.Errorf("making the harness root directory: %w", err)
	}
	wd, err := startWatchdog(root)
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return &Env{Root: root, Bins: bins, watchdog: wd, given: map[int]bool{}, nameSeen: map[string]bool{}}, nil
}

// dir makes (once) and returns a directory for the named component under the root.
func (e *Env) dir(name string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nameSeen[name] {
		return "", fmt.Errorf("component name %q is already used in this environment", name)
	}
	e.nameSeen[name] = true
	d := filepath.Join(e.Root, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("making %s: %w", d, err)
	}
	return d, nil
}

// StartProcess runs a program whose lifetime the environment owns. The log goes to
// ROOT/logs/NAME.log. Programs should name a path under Root in their arguments (a data or
// config directory) so that leftovers can be found by Close and by the watchdog.
func (e *Env) StartProcess(name, bin string, args []string, env []string) (*Process, error) {
	logDir := filepath.Join(e.Root, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("making log directory: %w", err)
	}
	p, err := startProcess(name, filepath.Join(logDir, name+".log"), bin, args, env)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.procs = append(e.procs, p)
	return p, nil
}

// onClose registers a function to run in Close, before the processes are stopped; the last
// registered runs first.
func (e *Env) onClose(f func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closers = append(e.closers, f)
}

// FreePort returns a loopback TCP port that nothing listens on and that this environment has
// not handed out before.
func (e *Env) FreePort() (int, error) {
	e.portsMu.Lock()
	defer e.portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !e.given[port] {
			e.given[port] = true
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: no unused port after 100 tries")
}

// Processes returns the processes started so far.
func (e *Env) Processes() []*Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.procs)
}

// Close stops everything the environment started (clusters, then the other processes, newest
// first), stops the watchdog and checks that no process of the environment is left. It removes
// the root directory unless KeepRoot is set. Calling it again does nothing.
func (e *Env) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	closers, procs := e.closers, e.procs
	e.mu.Unlock()

	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	_ = e.watchdog.Process.Kill()
	_ = e.watchdog.Wait()

	// Children of stopped processes may take a moment to go.
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if left = ProcessesUnder(e.Root); len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes left running after Close:\n%s", strings.Join(left, "\n")))
	}
	if !e.KeepRoot {
		if err := os.RemoveAll(e.Root); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", e.Root, err))
		}
	}
	return errors.Join(errs...)
}
