package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"
)

const (
	kopiaVersion = "v0.22.3"
	passphrase   = "bench-backup-passphrase"
	minioUser    = "benchadmin"
	minioSecret  = "benchadmin-secret-key"
	bucket       = "bench"
	mib          = 1 << 20
)

// Scenarios, in the order they run on each repository.
const (
	scInitial   = "initial backup"
	scUnchanged = "unchanged backup"
	scChanged   = "1% changed backup"
	scRestore   = "restore"
)

var scenarios = []string{scInitial, scUnchanged, scChanged, scRestore}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-backup:", err)
		os.Exit(1)
	}
}

type options struct {
	work    string
	scale   float64
	seed    uint64
	tools   []string
	targets []string
	repeat  int
	json    string
}

// bench holds what one run shares: paths, binaries, the dataset, MinIO and the results.
type bench struct {
	opt     options
	root    string // the stork module's directory
	bins    map[string]string
	ds      *dataset
	minio   *minioServer
	report  report
	srcSums map[string]fileSum // the changed dataset's content, computed once
}

func run(ctx context.Context) error {
	var o options
	var tools, targets string
	flag.StringVar(&o.work, "work", filepath.Join(os.TempDir(), "stork-bench-backup"), "work directory: dataset, repositories, logs")
	flag.Float64Var(&o.scale, "scale", 1, "multiplies every size and the number of small files (0.02 for a quick run)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated dataset")
	flag.StringVar(&tools, "tools", "ours,restic,kopia", "tools to compare: ours, restic, kopia, kopia-zstd (kopia with zstd-fastest)")
	flag.StringVar(&targets, "targets", "file,minio", "repository targets: file (local directory), minio (S3 on a local MinIO)")
	flag.IntVar(&o.repeat, "repeat", 1, "runs per cell; tables show the median")
	flag.StringVar(&o.json, "json", "", "JSON report (default WORK/bench-backup.json)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	o.tools, o.targets = splitList(tools), splitList(targets)
	for _, t := range o.tools {
		if !slices.Contains([]string{"ours", "restic", "kopia", "kopia-zstd"}, t) {
			return fmt.Errorf("-tools: unknown tool %q", t)
		}
	}
	for _, t := range o.targets {
		if t != "file" && t != "minio" {
			return fmt.Errorf("-targets: unknown target %q", t)
		}
	}
	if o.scale <= 0 || o.repeat < 1 || len(o.tools) == 0 || len(o.targets) == 0 {
		return errors.New("-scale must be > 0, -repeat ≥ 1, and -tools and -targets not empty")
	}
	var err error
	if o.work, err = filepath.Abs(o.work); err != nil {
		return err
	}
	if o.json == "" {
		o.json = filepath.Join(o.work, "bench-backup.json")
	}
	for _, d := range []string{"bin", "logs"} {
		if err := os.MkdirAll(filepath.Join(o.work, d), 0o755); err != nil {
			return err
		}
	}
	b := &bench{opt: o, bins: map[string]string{}}
	b.report.Started = time.Now().UTC()
	b.report.Settings = map[string]any{
		"scale": o.scale, "seed": o.seed, "repeat": o.repeat, "tools": o.tools, "targets": o.targets,
		"mib_per_s": "dataset bytes / wall seconds for every backup (also unchanged and 1% changed); restore: bytes restored",
		"caches":    "restic --cache-dir and kopia --cache-directory fresh per repository, kept across its steps; page cache warm; sync before each step",
		"kopia":     "default policy (no compression), automatic maintenance off (as in Velero); kopia-zstd: global policy --compression zstd-fastest",
		"restic":    "repository version 2, compression auto",
	}

	out, err := output(ctx, "", "go", "list", "-m", "-f", "{{.Dir}}")
	if err != nil || !fileExists(filepath.Join(out, "cmd", "storkctl")) {
		return fmt.Errorf("run this from the stork checkout (go list -m: %q, %v)", out, err)
	}
	b.root = out

	if b.ds, err = prepareDataset(ctx, o.work, o.seed, o.scale); err != nil {
		return err
	}
	b.report.Dataset = datasetInfo{Dir: b.ds.dir, Files: len(b.ds.files), Bytes: b.ds.bytes, ChangedFiles: len(b.ds.changed), AppendedBytes: b.ds.appendSize}
	if err := b.prepareTools(ctx); err != nil {
		return err
	}
	b.report.Machine = machineInfo(ctx)
	if slices.Contains(o.targets, "minio") {
		if b.minio, err = startMinIO(ctx, b.root, o.work); err != nil {
			return err
		}
		defer b.minio.stop()
	}

	// Read the dataset once, so that the first tool does not pay for a cold page cache (it
	// did: measured 10.5 s when our engine ran first, 5.8 s when second).
	if _, err := sumTree(b.ds.dir); err != nil {
		return err
	}
	fmt.Printf("\ndataset %s: %d files, %s; tools %s; targets %s; %d run(s) each\n\n",
		b.ds.dir, len(b.ds.files), humanBytes(b.ds.bytes), strings.Join(o.tools, ","), strings.Join(o.targets, ","), o.repeat)
	for rep := 1; rep <= o.repeat; rep++ {
		// Each run starts with another tool, so that what one leaves behind (dirty pages,
		// deleted inodes) does not always fall on the same one.
		order := append(slices.Clone(o.tools[(rep-1)%len(o.tools):]), o.tools[:(rep-1)%len(o.tools)]...)
		for _, target := range o.targets {
			for _, tool := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := b.runOne(ctx, tool, target, rep); err != nil {
					msg := fmt.Sprintf("%s %s run %d: %v", tool, target, rep, err)
					fmt.Printf("FAILED %s\n", msg)
					b.report.Failures = append(b.report.Failures, msg)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.printTables()
	b.report.Finished = time.Now().UTC()
	data, err := json.MarshalIndent(b.report, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.json, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nJSON report: %s\nlogs: %s\n", o.json, filepath.Join(o.work, "logs"))
	if len(b.report.Failures) > 0 {
		return fmt.Errorf("%d run(s) failed:\n  %s", len(b.report.Failures), strings.Join(b.report.Failures, "\n  "))
	}
	return nil
}

// ---- tools ----------------------------------------------------------------------------------

// prepareTools builds storkctl, finds (or installs) restic and finds (or builds) kopia.
func (b *bench) prepareTools(ctx context.Context) error {
	b.report.Tools = map[string]string{}
	need := func(t string) bool {
		return slices.Contains(b.opt.tools, t) || (t == "kopia" && slices.Contains(b.opt.tools, "kopia-zstd"))
	}
	if need("ours") {
		bin := filepath.Join(b.opt.work, "bin", "storkctl")
		fmt.Println("building ./cmd/storkctl")
		if _, err := output(ctx, b.root, "go", "build", "-o", bin, "./cmd/storkctl"); err != nil {
			return err
		}
		b.bins["ours"] = bin
		rev, err := output(ctx, b.root, "git", "describe", "--always", "--dirty")
		if err != nil {
			rev = "unknown"
		}
		b.report.Tools["ours"] = "storkctl " + rev
	}
	if need("restic") {
		bin, err := exec.LookPath("restic")
		if err != nil {
			fmt.Println("restic not found: apt-get install -y restic")
			if _, err := output(ctx, "", "apt-get", "install", "-y", "restic"); err != nil {
				if _, err := output(ctx, "", "apt-get", "update"); err != nil {
					return err
				}
				if _, err := output(ctx, "", "apt-get", "install", "-y", "restic"); err != nil {
					return err
				}
			}
			if bin, err = exec.LookPath("restic"); err != nil {
				return err
			}
		}
		b.bins["restic"] = bin
		b.report.Tools["restic"], _ = output(ctx, "", bin, "version")
	}
	if need("kopia") {
		bin, err := b.kopiaBinary(ctx)
		if err != nil {
			return err
		}
		b.bins["kopia"], b.bins["kopia-zstd"] = bin, bin
		v, _ := output(ctx, "", bin, "--version")
		b.report.Tools["kopia"] = "kopia " + v
	}
	return nil
}

// kopiaBinary returns kopia's CLI, built once into the user's cache from a wrapper module: the
// module proxy refuses kopia's version list, so `go install …@version` does not work, but a
// go.mod that requires the version does.
func (b *bench) kopiaBinary(ctx context.Context) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "stork", "tools", "kopia-"+kopiaVersion, "kopia")
	if fileExists(bin) {
		return bin, nil
	}
	fmt.Printf("building kopia %s into %s (about 2 minutes, once)\n", kopiaVersion, bin)
	tmp, err := os.MkdirTemp(b.opt.work, "kopia-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	files := map[string]string{
		"go.mod":   "module kopiawrapper\n\ngo 1.26\n\nrequire github.com/kopia/kopia " + kopiaVersion + "\n",
		"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"github.com/kopia/kopia\"\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	env := []string{"GOWORK=off", "GOFLAGS=-mod=mod"}
	if _, err := outputEnv(ctx, tmp, env, "go", "mod", "tidy"); err != nil {
		return "", err
	}
	if _, err := outputEnv(ctx, tmp, env, "go", "build", "-o", bin+".tmp", "github.com/kopia/kopia"); err != nil {
		return "", err
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// session is one tool on one fresh repository.
type session struct {
	tool, target string
	bin          string
	env          []string
	init         [][]string // commands that create the repository (not measured)
	backup       []string
	restore      func(dir string) []string
	restored     func(dir string) string // where the source's content lands under the restore dir
	size         func(ctx context.Context) (int64, error)
	cleanup      func(ctx context.Context) error
}

func (b *bench) newSession(tool, target string, rep int) (*session, error) {
	work, src := b.opt.work, b.ds.dir
	name := fmt.Sprintf("%s-%s", tool, target)
	repoDir := filepath.Join(work, "repos", name)
	cacheDir := filepath.Join(work, "cache", name)
	prefix := fmt.Sprintf("%s-r%d", tool, rep) // object prefix in the bucket
	for _, d := range []string{repoDir, cacheDir} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	s := &session{tool: tool, target: target, bin: b.bins[tool], restored: func(dir string) string { return dir }}
	if target == "file" {
		s.size = func(context.Context) (int64, error) { return dirBytes(repoDir) }
		s.cleanup = func(context.Context) error {
			return errors.Join(os.RemoveAll(repoDir), os.RemoveAll(cacheDir))
		}
	} else {
		s.size = func(ctx context.Context) (int64, error) { return b.minio.prefixBytes(ctx, prefix+"/") }
		s.cleanup = func(ctx context.Context) error {
			return errors.Join(b.minio.removePrefix(ctx, prefix+"/"), os.RemoveAll(cacheDir))
		}
	}
	switch tool {
	case "ours":
		s.env = []string{"STORK_PASSPHRASE=" + passphrase}
		base := []string{"repo", "--location", "file://" + repoDir}
		if target == "minio" {
			creds := filepath.Join(work, "s3-credentials")
			if err := os.MkdirAll(creds, 0o700); err != nil {
				return nil, err
			}
			for f, v := range map[string]string{"accessKeyID": minioUser, "secretAccessKey": minioSecret} {
				if err := os.WriteFile(filepath.Join(creds, f), []byte(v), 0o600); err != nil {
					return nil, err
				}
			}
			base = []string{"repo", "--location", "s3://" + bucket + "/" + prefix, "--s3-endpoint", b.minio.endpoint,
				"--s3-path-style", "--s3-region", "us-east-1", "--credentials-dir", creds}
		}
		s.init = [][]string{cat(base, "init")}
		s.backup = cat(base, "backup", src)
		s.restore = func(dir string) []string { return cat(base, "restore", "latest", dir) }
	case "restic":
		s.env = []string{"RESTIC_PASSWORD=" + passphrase}
		loc := repoDir
		if target == "minio" {
			loc = "s3:" + b.minio.endpoint + "/" + bucket + "/" + prefix
			s.env = append(s.env, "AWS_ACCESS_KEY_ID="+minioUser, "AWS_SECRET_ACCESS_KEY="+minioSecret)
		}
		base := []string{"-r", loc, "--cache-dir", cacheDir}
		s.init = [][]string{cat(base, "init", "--repository-version", "2")}
		s.backup = cat(base, "backup", src)
		s.restore = func(dir string) []string { return cat(base, "restore", "latest", "--target", dir) }
		s.restored = func(dir string) string { return filepath.Join(dir, src) } // restic restores absolute paths
	case "kopia", "kopia-zstd":
		s.env = []string{"KOPIA_PASSWORD=" + passphrase, "KOPIA_CHECK_FOR_UPDATES=false"}
		common := []string{"--config-file", filepath.Join(cacheDir, "repository.config"), "--log-dir", filepath.Join(cacheDir, "logs")}
		create := []string{"repository", "create", "filesystem", "--path", repoDir}
		if target == "minio" {
			create = []string{"repository", "create", "s3", "--bucket", bucket, "--prefix", prefix + "/",
				"--endpoint", strings.TrimPrefix(b.minio.endpoint, "http://"), "--disable-tls",
				"--access-key", minioUser, "--secret-access-key", minioSecret}
		}
		create = append(create, "--cache-directory", filepath.Join(cacheDir, "cache"), "--no-check-for-updates")
		// Kopia runs its full maintenance (GC, index compaction) at the end of a snapshot when it is
		// due, which it is right after the repository is created; Velero turns that off and runs
		// maintenance as jobs of their own, and restic and Stork run none during a backup.
		s.init = [][]string{cat(create, common...),
			cat([]string{"maintenance", "set", "--enable-quick=false", "--enable-full=false"}, common...)}
		if tool == "kopia-zstd" {
			s.init = append(s.init, cat([]string{"policy", "set", "--global", "--compression", "zstd-fastest"}, common...))
		}
		s.backup = cat([]string{"snapshot", "create", src, "--no-progress"}, common...)
		s.restore = func(dir string) []string {
			return cat([]string{"snapshot", "restore", src, dir, "--no-progress"}, common...)
		}
	}
	return s, nil
}

// runOne runs the four scenarios for one tool on one fresh repository.
func (b *bench) runOne(ctx context.Context, tool, target string, rep int) (err error) {
	s, err := b.newSession(tool, target, rep)
	if err != nil {
		return err
	}
	restoreDir := filepath.Join(b.opt.work, "restore")
	defer func() {
		err = errors.Join(err, s.cleanup(context.WithoutCancel(ctx)), os.RemoveAll(restoreDir))
	}()
	label := fmt.Sprintf("%s %s", tool, target)
	if b.opt.repeat > 1 {
		label += fmt.Sprintf(" #%d", rep)
	}
	for i, args := range s.init {
		if _, err := b.exec(ctx, s, fmt.Sprintf("init%d-r%d", i, rep), args); err != nil {
			return err
		}
	}
	step := func(sc string, args []string, bytes int64) error {
		syscall.Sync()
		res, err := b.exec(ctx, s, fmt.Sprintf("%s-r%d", strings.ReplaceAll(strings.TrimPrefix(sc, "1% "), " ", "-"), rep), args)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		res.Tool, res.Target, res.Scenario, res.Run, res.Bytes = tool, target, sc, rep, bytes
		res.MiBps = float64(bytes) / mib / res.Seconds
		b.report.Runs = append(b.report.Runs, res)
		note := ""
		if res.Note != "" {
			note = "  [" + res.Note + "]"
		}
		fmt.Printf("%-22s %-18s %8.2f s %9.1f MiB/s  peak RSS %6.0f MiB  CPU %6.1f s%s\n",
			label+":", sc, res.Seconds, res.MiBps, float64(res.MaxRSSKiB)/1024, res.CPU, note)
		if sc == scUnchanged && !parentUsed(tool, res.Note, len(b.ds.files)) {
			fmt.Printf("%-22s WARNING: the unchanged backup did not take every file from the parent snapshot\n", label+":")
		}
		return nil
	}

	if err := step(scInitial, s.backup, b.ds.bytes); err != nil {
		return err
	}
	size, err := s.size(ctx)
	if err != nil {
		return fmt.Errorf("measuring the repository: %w", err)
	}
	b.report.RepoSizes = append(b.report.RepoSizes, repoSize{Tool: tool, Target: target, Run: rep, Bytes: size})
	fmt.Printf("%-22s repository after the initial backup: %s (%.1f%% of the dataset)\n", label+":", humanBytes(size), 100*float64(size)/float64(b.ds.bytes))
	if err := step(scUnchanged, s.backup, b.ds.bytes); err != nil {
		return err
	}

	defer func() { err = errors.Join(err, b.ds.revert()) }()
	if err := b.ds.change(); err != nil {
		return err
	}
	if err := step(scChanged, s.backup, b.ds.bytes); err != nil {
		return err
	}

	if err := os.RemoveAll(restoreDir); err != nil {
		return err
	}
	if err := step(scRestore, s.restore(restoreDir), b.ds.bytes+b.ds.appendSize); err != nil {
		return err
	}
	if b.srcSums == nil {
		if b.srcSums, err = sumTree(b.ds.dir); err != nil {
			return err
		}
	}
	got, err := sumTree(s.restored(restoreDir))
	if err != nil {
		return fmt.Errorf("verifying the restore: %w", err)
	}
	if diff := compareSums(b.srcSums, got); diff != "" {
		fmt.Printf("%-22s RESTORE VERIFICATION FAILED: %s\n", label+":", diff)
		return fmt.Errorf("restored tree differs from the source: %s", diff)
	}
	fmt.Printf("%-22s restored tree verified: %d files and directories, sizes and SHA-256 equal\n", label+":", len(got))
	return nil
}

// result is one measured step.
type result struct {
	Tool      string  `json:"tool"`
	Target    string  `json:"target"`
	Scenario  string  `json:"scenario"`
	Run       int     `json:"run"`
	Seconds   float64 `json:"seconds"`
	Bytes     int64   `json:"bytes"` // what MiB/s is computed from
	MiBps     float64 `json:"mib_per_s"`
	MaxRSSKiB int64   `json:"max_rss_kib"`
	CPU       float64 `json:"cpu_seconds"`    // user + system time of the process
	Note      string  `json:"note,omitempty"` // the tool's own summary line
}

// exec runs one command of a session, logging its output, and measures it.
func (b *bench) exec(ctx context.Context, s *session, step string, args []string) (result, error) {
	logPath := filepath.Join(b.opt.work, "logs", fmt.Sprintf("%s-%s-%s.log", s.tool, s.target, step))
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	logText := fmt.Sprintf("$ %s %s\n%s\nexit: %v, %.3f s\n", s.bin, strings.Join(args, " "), out.String(), err, elapsed.Seconds())
	if werr := os.WriteFile(logPath, []byte(logText), 0o644); werr != nil {
		return result{}, werr
	}
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %v\n%s(log: %s)", filepath.Base(s.bin), strings.Join(args, " "), err, tail(out.String(), 15), logPath)
	}
	res := result{Seconds: elapsed.Seconds(), Note: summaryLine(s.tool, out.String())}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.MaxRSSKiB = ru.Maxrss // KiB on Linux
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return res, nil
}

// summaryLine picks the line of a tool's output that says what a backup did.
func summaryLine(tool, out string) string {
	prefix := map[string]string{"ours": "snapshot ", "restic": "Files:", "kopia": "Files:"}[strings.TrimSuffix(tool, "-zstd")]
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, prefix) || strings.HasPrefix(l, "Created snapshot") {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	return ""
}

// parentUsed says whether an unchanged backup's summary shows every file taken from the parent
// (kopia prints no counts: it is trusted).
func parentUsed(tool, note string, files int) bool {
	switch tool {
	case "ours":
		return strings.Contains(note, fmt.Sprintf("%d files (%d unchanged)", files, files))
	case "restic":
		return strings.Contains(note, fmt.Sprintf("0 new, 0 changed, %d unmodified", files))
	}
	return true
}

// ---- MinIO ----------------------------------------------------------------------------------

type minioServer struct {
	endpoint string // http://127.0.0.1:PORT
	dir      string
	cmd      *exec.Cmd
	client   *minio.Client
}

// startMinIO starts the test MinIO (hack/testbin.sh) on a loopback port, with an empty bucket.
func startMinIO(ctx context.Context, root, work string) (*minioServer, error) {
	bins, err := output(ctx, root, filepath.Join(root, "hack", "testbin.sh"))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "minio")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(work, "logs", "minio.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bins, "minio"), "server", filepath.Join(dir, "data"), "--address", host,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioSecret,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the benchmark, however the benchmark ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &minioServer{endpoint: "http://" + host, dir: dir, cmd: cmd}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := hc.Get(m.endpoint + "/minio/health/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("minio exited while starting: %v (see %s)", err, logf.Name())
		case <-ctx.Done():
			m.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("minio not healthy at %s after a minute (see %s)", m.endpoint, logf.Name())
		}
	}
	if m.client, err = minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(minioUser, minioSecret, "")}); err != nil {
		m.stop()
		return nil, err
	}
	if err := m.client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		m.stop()
		return nil, fmt.Errorf("making bucket %s: %w", bucket, err)
	}
	fmt.Printf("MinIO at %s, data in %s\n", m.endpoint, dir)
	return m, nil
}

func (m *minioServer) stop() {
	_ = m.cmd.Process.Kill()
	time.Sleep(100 * time.Millisecond)
	_ = os.RemoveAll(m.dir)
}

func (m *minioServer) prefixBytes(ctx context.Context, prefix string) (int64, error) {
	var n int64
	for o := range m.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return 0, o.Err
		}
		n += o.Size
	}
	return n, nil
}

func (m *minioServer) removePrefix(ctx context.Context, prefix string) error {
	objs := m.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true})
	for e := range m.client.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("removing %s: %w", e.ObjectName, e.Err)
		}
	}
	return nil
}

// ---- dataset --------------------------------------------------------------------------------

// genVersion changes whenever the generator does, so a dataset made the old way is not reused.
const genVersion = 2

type fileSpec struct {
	rel   string
	size  int64
	text  bool
	index uint64 // seeds the content
}

type dataset struct {
	dir        string
	files      []fileSpec
	bytes      int64
	changed    []fileSpec // small files that the 1% change rewrites
	appendTo   fileSpec   // the text file that it appends to
	appendSize int64
	marker     string // exists while the dataset is changed
	seed       uint64
}

// baseTime is the modification time of every generated file, plus its index in seconds.
var baseTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func planDataset(work string, seed uint64, scale float64) *dataset {
	key := fmt.Sprintf("dataset-v%d-seed%d-scale%g", genVersion, seed, scale)
	d := &dataset{dir: filepath.Join(work, key), marker: filepath.Join(work, key+".changed"), seed: seed}
	scaled := func(n float64) int64 { return max(1, int64(math.Round(n*scale))) }
	var idx uint64
	add := func(rel string, size int64, text bool) {
		idx++
		d.files = append(d.files, fileSpec{rel: rel, size: size, text: text, index: idx})
		d.bytes += size
	}
	add("random/blob.bin", scaled(1<<30), false)
	for i := range 8 {
		add(fmt.Sprintf("text/app-%d.log", i), scaled(64<<20), true)
	}
	d.appendTo = d.files[1]
	d.appendSize = scaled(4 << 20)
	r := rand.New(rand.NewPCG(seed, 0))
	n := int(scaled(20000))
	k := max(1, n/100)
	for i := range n {
		size := 4<<10 + r.Int64N(60<<10+1)
		text := r.IntN(2) == 0
		ext := map[bool]string{true: "txt", false: "bin"}[text]
		add(fmt.Sprintf("small/g%02d/s%02d/f%05d.%s", i%10, i/10%10, i, ext), size, text)
		if i%(n/k) == n/k/2 && len(d.changed) < k {
			d.changed = append(d.changed, d.files[len(d.files)-1])
		}
	}
	return d
}

// prepareDataset generates the dataset, or reuses one generated with the same parameters.
func prepareDataset(ctx context.Context, work string, seed uint64, scale float64) (*dataset, error) {
	d := planDataset(work, seed, scale)
	done := d.dir + ".done"
	if fileExists(done) {
		if fileExists(d.marker) { // a run was interrupted during the 1% change
			fmt.Println("undoing an interrupted run's change to the dataset")
			if err := d.revert(); err != nil {
				return nil, err
			}
		}
		fmt.Printf("reusing dataset %s\n", d.dir)
		return d, nil
	}
	fmt.Printf("generating dataset %s: %d files, %s\n", d.dir, len(d.files), humanBytes(d.bytes))
	start := time.Now()
	if err := os.RemoveAll(d.dir); err != nil {
		return nil, err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	for _, f := range d.files {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return d.write(f, 0, false)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	syscall.Sync()
	fmt.Printf("generated in %.1f s\n", time.Since(start).Seconds())
	return d, os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// write generates a file's content: variant 0 is the original, 1 the changed one. With appendSize
// it appends that many bytes of variant 1 instead.
func (d *dataset) write(f fileSpec, variant uint64, appending bool) error {
	p := filepath.Join(d.dir, f.rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	flags, size := os.O_WRONLY|os.O_CREATE|os.O_TRUNC, f.size
	if appending {
		flags, size = os.O_WRONLY|os.O_APPEND, d.appendSize
	}
	file, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(file, 1<<20)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[0:], d.seed)
	binary.LittleEndian.PutUint64(seed[8:], f.index)
	binary.LittleEndian.PutUint64(seed[16:], variant)
	if f.text {
		err = writeText(w, rand.New(rand.NewChaCha8(seed)), size)
	} else {
		_, err = io.CopyN(w, rand.NewChaCha8(seed), size)
	}
	if err == nil {
		err = w.Flush()
	}
	if err = errors.Join(err, file.Close()); err != nil || variant != 0 {
		return err
	}
	mtime := baseTime.Add(time.Duration(f.index) * time.Second)
	return os.Chtimes(p, mtime, mtime)
}

// change applies the 1% change: rewrite 1% of the small files (same sizes, new content) and append
// to one text file. Every tool sees exactly the same change.
func (d *dataset) change() error {
	if err := os.WriteFile(d.marker, nil, 0o644); err != nil {
		return err
	}
	for _, f := range d.changed {
		if err := d.write(f, 1, false); err != nil {
			return err
		}
	}
	return d.write(d.appendTo, 1, true)
}

// revert restores the original content and modification times.
func (d *dataset) revert() error {
	for _, f := range d.changed {
		if err := d.write(f, 0, false); err != nil {
			return err
		}
	}
	p := filepath.Join(d.dir, d.appendTo.rel)
	mtime := baseTime.Add(time.Duration(d.appendTo.index) * time.Second)
	if err := errors.Join(os.Truncate(p, d.appendTo.size), os.Chtimes(p, mtime, mtime)); err != nil {
		return err
	}
	return os.Remove(d.marker)
}

// The text is log-like lines: timestamp, level, component, a message template and a few free words
// (both Zipf-distributed over a vocabulary of common English words and made-up ones) and fields.
// zstd's fastest level compresses it about 4.5× in 1 MiB pieces (zstd -1: 4.4×, gzip -6: 4.7×).
var (
	vocabulary = makeVocabulary()
	components = []string{"api", "scheduler", "controller", "agent", "repo", "restore", "backup", "gc", "webhook",
		"leader", "cache", "informer", "csi", "snapshotter", "placement", "metrics", "auth", "s3", "index", "pack"}
	levels = []string{"INFO ", "INFO ", "INFO ", "INFO ", "DEBUG", "DEBUG", "WARN ", "ERROR"}
)

func makeVocabulary() []string {
	words := strings.Fields(`the of and to a in is it you that he was for on are with as I his they be at one
		have this from or had by not word but what some we can out other were all there when up use your how
		said an each she which do their time if will way about many then them write would like so these her
		long make thing see him two has look more day could go come did number sound no most people my over
		know water than call first who may down side been now find any new work part take get place made
		live where after back little only round man year came show every good me give our under name very
		through just form sentence great think say help low line differ turn cause much mean before move
		right boy old too same tell does set three want air well also play small end put home read hand
		port large spell add even land here must big high such follow act why ask men change went light
		kind off need house picture try us again animal point mother world near build self earth father
		request volume node pod snapshot backup restore error timeout retry bucket object chunk pack index`)
	syllables := strings.Fields("ka lo mi ne ru ta sho vin der pel cor an ex tra lum mor qui zen bar fi go hal " +
		"jo ke lan mu nor pi ros sel tor ul ver wix yan zo ble cru dra fen gri pro sti tek")
	r := rand.New(rand.NewPCG(42, 42)) // the same vocabulary whatever the seed
	seen := map[string]bool{}
	for _, w := range words {
		seen[w] = true
	}
	for len(words) < 8000 {
		var sb strings.Builder
		for range 1 + r.IntN(3) + r.IntN(2) {
			sb.WriteString(syllables[r.IntN(len(syllables))])
		}
		if w := sb.String(); !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

// templates are the messages of the log lines: fixed word sequences, as a program's log calls
// are, each line picking one (Zipf) and adding a few free words and fields.
var templates = makeTemplates()

func makeTemplates() [][]byte {
	r := rand.New(rand.NewPCG(7, 7))
	words := rand.NewZipf(r, 1.1, 4, uint64(len(vocabulary)-1))
	out := make([][]byte, 600)
	for i := range out {
		var t []byte
		for j := range 3 + r.IntN(10) {
			if j > 0 {
				t = append(t, ' ')
			}
			t = append(t, vocabulary[words.Uint64()]...)
		}
		out[i] = t
	}
	return out
}

func writeText(w *bufio.Writer, r *rand.Rand, size int64) error {
	words := rand.NewZipf(r, 1.1, 4, uint64(len(vocabulary)-1))
	tmpl := rand.NewZipf(r, 1.1, 2, uint64(len(templates)-1))
	comps := rand.NewZipf(r, 1.3, 1, uint64(len(components)-1))
	t := baseTime.UnixMilli() + r.Int64N(1e9)
	line := make([]byte, 0, 512)
	for size > 0 {
		t += r.Int64N(1500)
		line = time.UnixMilli(t).UTC().AppendFormat(line[:0], "2006-01-02T15:04:05.000Z ")
		line = append(line, levels[r.IntN(len(levels))]...)
		line = append(line, " ["...)
		line = append(line, components[comps.Uint64()]...)
		line = append(line, "] "...)
		line = append(line, templates[tmpl.Uint64()]...)
		for range r.IntN(6) {
			line = append(line, ' ')
			line = append(line, vocabulary[words.Uint64()]...)
		}
		switch r.IntN(4) {
		case 0:
			line = append(line, " took="...)
			line = strconv.AppendInt(line, r.Int64N(5000), 10)
			line = append(line, "ms"...)
		case 1:
			line = append(line, " req="...)
			line = strconv.AppendUint(line, uint64(r.Uint32()), 16)
		case 2:
			line = append(line, " node=node-"...)
			line = strconv.AppendInt(line, r.Int64N(64), 10)
			line = append(line, " zone="...)
			line = append(line, "abc"[r.IntN(3)])
		}
		line = append(line, '\n')
		if int64(len(line)) > size {
			line = line[:size]
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		size -= int64(len(line))
	}
	return nil
}

// ---- verification ---------------------------------------------------------------------------

type fileSum struct {
	size int64
	sum  [32]byte
}

// sumTree hashes every regular file under root, keyed by slash path; directories get a zero entry.
func sumTree(root string) (map[string]fileSum, error) {
	sums := map[string]fileSum{}
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			sums[filepath.ToSlash(rel)+"/"] = fileSum{}
		case d.Type().IsRegular():
			paths = append(paths, rel)
		default:
			return fmt.Errorf("%s: unexpected file type %v", p, d.Type())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(runtime.NumCPU())
	for _, rel := range paths {
		g.Go(func() error {
			f, err := os.Open(filepath.Join(root, rel))
			if err != nil {
				return err
			}
			defer f.Close()
			h := sha256.New()
			n, err := io.Copy(h, f)
			if err != nil {
				return err
			}
			s := fileSum{size: n}
			h.Sum(s.sum[:0])
			mu.Lock()
			sums[filepath.ToSlash(rel)] = s
			mu.Unlock()
			return nil
		})
	}
	return sums, g.Wait()
}

// compareSums describes how got differs from want, or returns "".
func compareSums(want, got map[string]fileSum) string {
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case g.size != w.size:
			diffs = append(diffs, fmt.Sprintf("%s: %d bytes, want %d", p, g.size, w.size))
		case g.sum != w.sum:
			diffs = append(diffs, p+": content differs")
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "unexpected "+p)
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	sort.Strings(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("… %d differences in all", len(diffs)))
	}
	return strings.Join(diffs, "; ")
}

// ---- report ---------------------------------------------------------------------------------

type report struct {
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Machine   map[string]string `json:"machine"`
	Tools     map[string]string `json:"tools"`
	Settings  map[string]any    `json:"settings"`
	Dataset   datasetInfo       `json:"dataset"`
	Runs      []result          `json:"runs"`
	RepoSizes []repoSize        `json:"repository_sizes"`
	Medians   []cell            `json:"medians"`
	Failures  []string          `json:"failures,omitempty"`
}

type datasetInfo struct {
	Dir           string `json:"dir"`
	Files         int    `json:"files"`
	Bytes         int64  `json:"bytes"`
	ChangedFiles  int    `json:"changed_files"`
	AppendedBytes int64  `json:"appended_bytes"`
}

type repoSize struct {
	Tool   string `json:"tool"`
	Target string `json:"target"`
	Run    int    `json:"run"`
	Bytes  int64  `json:"bytes"`
}

// cell is the median of one tool, target and scenario over the runs.
type cell struct {
	Tool      string  `json:"tool"`
	Target    string  `json:"target"`
	Scenario  string  `json:"scenario"`
	Runs      int     `json:"runs"`
	Seconds   float64 `json:"seconds"`
	MiBps     float64 `json:"mib_per_s"`
	MaxRSSMiB float64 `json:"max_rss_mib"`
}

func machineInfo(ctx context.Context) map[string]string {
	m := map[string]string{"nproc": strconv.Itoa(runtime.NumCPU()), "goarch": runtime.GOARCH}
	m["go"], _ = output(ctx, "", "go", "version")
	m["kernel"], _ = output(ctx, "", "uname", "-sr")
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	return m
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) medians() map[[3]string]cell {
	groups := map[[3]string][]result{}
	for _, r := range b.report.Runs {
		k := [3]string{r.Tool, r.Target, r.Scenario}
		groups[k] = append(groups[k], r)
	}
	out := map[[3]string]cell{}
	for k, rs := range groups {
		var secs, rss []float64
		for _, r := range rs {
			secs = append(secs, r.Seconds)
			rss = append(rss, float64(r.MaxRSSKiB)/1024)
		}
		c := cell{Tool: k[0], Target: k[1], Scenario: k[2], Runs: len(rs), Seconds: median(secs), MaxRSSMiB: median(rss)}
		c.MiBps = float64(rs[0].Bytes) / mib / c.Seconds
		out[k] = c
	}
	return out
}

func (b *bench) printTables() {
	cells := b.medians()
	for _, target := range b.opt.targets {
		for _, tool := range b.opt.tools {
			for _, sc := range scenarios {
				if c, ok := cells[[3]string{tool, target, sc}]; ok {
					b.report.Medians = append(b.report.Medians, c)
				}
			}
		}
	}
	var peers []string
	if slices.Contains(b.opt.tools, "ours") {
		for _, t := range b.opt.tools {
			// kopia-zstd gets its own ratios only when plain kopia is not in the table.
			if t != "ours" && (t != "kopia-zstd" || !slices.Contains(b.opt.tools, "kopia")) {
				peers = append(peers, t)
			}
		}
	}
	what := "times"
	if b.opt.repeat > 1 {
		what = fmt.Sprintf("medians of %d runs", b.opt.repeat)
	}
	for _, target := range b.opt.targets {
		fmt.Printf("\n== target %s — scale %g: %d files, %s; %s ==\n", target, b.opt.scale, len(b.ds.files), humanBytes(b.ds.bytes), what)
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := []string{"scenario"}
		for _, t := range b.opt.tools {
			head = append(head, t+" s", "MiB/s", "RSS MiB")
		}
		for _, p := range peers {
			head = append(head, "÷"+p+" speed", "÷"+p+" RSS")
		}
		head = append(head, "targets")
		fmt.Fprintln(w, strings.Join(head, "\t")+"\t")
		for _, sc := range scenarios {
			row := []string{sc}
			for _, t := range b.opt.tools {
				if c, ok := cells[[3]string{t, target, sc}]; ok {
					row = append(row, fmt.Sprintf("%.2f", c.Seconds), fmt.Sprintf("%.0f", c.MiBps), fmt.Sprintf("%.0f", c.MaxRSSMiB))
				} else {
					row = append(row, "-", "-", "-")
				}
			}
			ours, okOurs := cells[[3]string{"ours", target, sc}]
			for _, p := range peers {
				if c, ok := cells[[3]string{p, target, sc}]; ok && okOurs {
					row = append(row, fmt.Sprintf("%.2f×", c.Seconds/ours.Seconds), fmt.Sprintf("%.2f", ours.MaxRSSMiB/c.MaxRSSMiB))
				} else {
					row = append(row, "-", "-")
				}
			}
			row = append(row, targetChecks(sc, cells, target))
			fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
		}
		var sizes []string
		for _, t := range b.opt.tools {
			var xs []float64
			for _, r := range b.report.RepoSizes {
				if r.Tool == t && r.Target == target {
					xs = append(xs, float64(r.Bytes))
				}
			}
			if len(xs) > 0 {
				sizes = append(sizes, fmt.Sprintf("%s %s", t, humanBytes(int64(median(xs)))))
			}
		}
		_ = w.Flush()
		fmt.Printf("repository size after the initial backup: %s\n", strings.Join(sizes, ", "))
	}
	fmt.Printf("\nMiB/s = %s (the dataset) ÷ wall seconds, for the 1%%-changed and unchanged backups too; restore: the changed dataset (+%s).\n"+
		"÷X speed = X's time ÷ ours (>1: we are faster); ÷X RSS = our peak RSS ÷ X's (<1: we use less); RSS = peak RSS of the process.\n"+
		"Targets: initial backup ≥2.5× restic, restore ≥2× restic, unchanged re-backup <0.5 s, peak RSS ≤ restic's (each row).\n",
		humanBytes(b.ds.bytes), humanBytes(b.ds.appendSize))
}

// targetChecks says PASS or MISS for the targets that apply to a scenario's row.
func targetChecks(sc string, cells map[[3]string]cell, target string) string {
	ours, ok := cells[[3]string{"ours", target, sc}]
	if !ok {
		return ""
	}
	restic, okR := cells[[3]string{"restic", target, sc}]
	verdict := func(ok bool) string { return map[bool]string{true: "PASS", false: "MISS"}[ok] }
	var checks []string
	switch sc {
	case scInitial:
		if okR {
			checks = append(checks, "≥2.5× restic "+verdict(restic.Seconds/ours.Seconds >= 2.5))
		}
	case scRestore:
		if okR {
			checks = append(checks, "≥2× restic "+verdict(restic.Seconds/ours.Seconds >= 2))
		}
	case scUnchanged:
		checks = append(checks, "<0.5 s "+verdict(ours.Seconds < 0.5))
	}
	if okR {
		checks = append(checks, "RSS≤restic "+verdict(ours.MaxRSSMiB <= restic.MaxRSSMiB))
	}
	return strings.Join(checks, ", ")
}

// ---- helpers --------------------------------------------------------------------------------

func output(ctx context.Context, dir string, name string, args ...string) (string, error) {
	return outputEnv(ctx, dir, nil, name, args...)
}

// outputEnv runs a helper command (not a measured one) and returns its trimmed standard output.
func outputEnv(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 20))
	}
	return strings.TrimSpace(string(out)), nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func cat(a []string, b ...string) []string { return append(slices.Clip(a), b...) }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func dirBytes(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	return n, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n") + "\n"
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
