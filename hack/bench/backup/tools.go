package main

// The tools compared (ours, restic, kopia): building them, their command lines, and running one tool through every step.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"stork.dev/stork/internal/version"
)

// prepareTools builds stork-repo, finds (or installs) restic and finds (or builds) kopia.
func (b *bench) prepareTools(ctx context.Context) error {
	b.report.Tools = map[string]string{}
	need := func(t string) bool {
		return slices.Contains(b.opt.tools, t) || (t == "kopia" && slices.Contains(b.opt.tools, "kopia-zstd")) ||
			(t == "ours" && slices.Contains(b.opt.tools, "ours-s2"))
	}
	if need("ours") {
		// stork-repo: the repository commands of `storkctl repo` without the Kubernetes
		// clients, as a user without a cluster (or a rescue host) runs them.
		bin := filepath.Join(b.opt.work, "bin", "stork-repo")
		fmt.Println("building ./cmd/stork-repo")
		if _, err := output(ctx, b.root, "go", "build", "-tags="+version.BuildTags, "-o", bin, "./cmd/stork-repo"); err != nil {
			return err
		}
		b.bins["ours"], b.bins["ours-s2"] = bin, bin
		rev, err := output(ctx, b.root, "git", "describe", "--always", "--dirty")
		if err != nil {
			rev = "unknown"
		}
		b.report.Tools["ours"] = "stork-repo " + rev
		b.report.Tools["ours-s2"] = "stork-repo " + rev + ", init --compression s2"
	}
	if need("copy") {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		b.bins["copy"], b.report.Tools["copy"] = self, "copy (this benchmark: files concatenated into 32 MiB objects, no processing)"
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
	tool, target   string
	bin            string
	env            []string
	init           [][]string // commands that create the repository (not measured)
	backup         []string
	restore        func(dir string) []string
	restored       func(dir string) string // where the source's content lands under the restore dir
	incremental    bool                    // false: the tool has no unchanged or 1%-changed step
	check          []string                // verifies the repository's structure (no data read)
	forget         []string                // deletes the first snapshot (nil: list, then deleteSnapshot ID)
	list           []string                // lists the snapshots, oldest first (with --json)
	ls             []string                // ours: lists the snapshots
	deleteSnapshot []string                // deletes the snapshot whose ID follows
	prune          []string                // deletes the data no snapshot needs any more
	size           func(ctx context.Context) (int64, error)
	cleanup        func(ctx context.Context) error
	stored         string // the directory that holds the repository's bytes (MinIO's, for minio)
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
		s.stored = repoDir
		s.size = func(context.Context) (int64, error) { return dirBytes(repoDir) }
		s.cleanup = func(context.Context) error {
			return errors.Join(os.RemoveAll(repoDir), os.RemoveAll(cacheDir))
		}
	} else {
		s.stored = filepath.Join(b.minio.dir, "data", bucket, prefix)
		s.size = func(ctx context.Context) (int64, error) { return b.minio.prefixBytes(ctx, prefix+"/") }
		s.cleanup = func(ctx context.Context) error {
			return errors.Join(b.minio.removePrefix(ctx, prefix+"/"), os.RemoveAll(cacheDir))
		}
	}
	s.incremental = tool != "copy"
	switch tool {
	case "copy":
		dest := repoDir
		if target == "minio" {
			dest = "s3://" + bucket + "/" + prefix
			s.env = []string{"COPY_S3_HOST=" + strings.TrimPrefix(b.minio.toolEndpoint, "http://"),
				"COPY_S3_ACCESS_KEY=" + minioUser, "COPY_S3_SECRET_KEY=" + minioSecret}
		}
		s.backup = []string{"copy-tool", "backup", src, dest}
		s.restore = func(dir string) []string { return []string{"copy-tool", "restore", dest, dir} }
	case "ours", "ours-s2":
		s.env = []string{"STORK_PASSPHRASE=" + passphrase}
		// Its cache of manifests goes where restic's and kopia's caches go, removed with them.
		base := []string{"--location", "file://" + repoDir, "--cache-dir", cacheDir}
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
			base = []string{"--location", "s3://" + bucket + "/" + prefix, "--s3-endpoint", b.minio.toolEndpoint,
				"--s3-path-style", "--s3-region", "us-east-1", "--credentials-dir", creds, "--cache-dir", cacheDir}
		}
		s.init = [][]string{cat(base, "init")}
		if tool == "ours-s2" {
			s.init = [][]string{cat(base, "init", "--compression", "s2")}
		}
		s.backup = cat(base, "backup", src)
		s.restore = func(dir string) []string { return cat(base, "restore", "latest", dir) }
		s.check = cat(base, "check")
		s.ls = cat(base, "ls")
		s.forget = cat(base, "forget", "--keep-last", "1")
		s.prune = cat(base, "prune", "--grace", "0")
	case "restic":
		s.env = []string{"RESTIC_PASSWORD=" + passphrase}
		loc := repoDir
		if target == "minio" {
			loc = "s3:" + b.minio.toolEndpoint + "/" + bucket + "/" + prefix
			s.env = append(s.env, "AWS_ACCESS_KEY_ID="+minioUser, "AWS_SECRET_ACCESS_KEY="+minioSecret)
		}
		base := []string{"-r", loc, "--cache-dir", cacheDir}
		s.init = [][]string{cat(base, "init", "--repository-version", "2")}
		s.backup = cat(base, "backup", src)
		s.restore = func(dir string) []string { return cat(base, "restore", "latest", "--target", dir) }
		s.restored = func(dir string) string { return filepath.Join(dir, src) } // restic restores absolute paths
		s.check = cat(base, "check")
		s.forget = cat(base, "forget", "--keep-last", "1")
		s.prune = cat(base, "prune")
	case "kopia", "kopia-zstd":
		s.env = []string{"KOPIA_PASSWORD=" + passphrase, "KOPIA_CHECK_FOR_UPDATES=false"}
		common := []string{"--config-file", filepath.Join(cacheDir, "repository.config"), "--log-dir", filepath.Join(cacheDir, "logs")}
		create := []string{"repository", "create", "filesystem", "--path", repoDir}
		if target == "minio" {
			create = []string{"repository", "create", "s3", "--bucket", bucket, "--prefix", prefix + "/",
				"--endpoint", strings.TrimPrefix(b.minio.toolEndpoint, "http://"), "--disable-tls",
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
		// verify walks every snapshot and checks that each object it needs exists (reading no
		// file content by default), as restic's and our check do.
		s.check = cat([]string{"snapshot", "verify"}, common...)
		s.list = cat([]string{"snapshot", "list", src}, common...)
		s.deleteSnapshot = cat([]string{"snapshot", "delete"}, common...)
		// Full maintenance is kopia's prune; --safety=none drops the hour-long wait that protects
		// concurrent writers, as our --grace 0 does.
		s.prune = cat([]string{"maintenance", "run", "--full", "--safety=none"}, common...)
	}
	return s, nil
}

// runOne runs the four scenarios for one tool on one fresh repository.
func (b *bench) runOne(ctx context.Context, tool, target string, rep int) (err error) {
	s, err := b.newSession(tool, target, rep)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.cleanup(context.WithoutCancel(ctx))) }()
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
		fmt.Printf("%-22s %-18s %8.2f s %9.1f MiB/s  peak RSS %6.0f MiB (anon %6.0f)  CPU %6.1f s%s\n",
			label+":", sc, res.Seconds, res.MiBps, float64(res.MaxRSSKiB)/1024, float64(res.AnonKiB)/1024, res.CPU, note)
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
	if s.incremental {
		if err := step(scUnchanged, s.backup, b.ds.bytes); err != nil {
			return err
		}
	}

	defer func() { err = errors.Join(err, b.ds.revert()) }()
	if err := b.ds.change(); err != nil {
		return err
	}
	if s.incremental {
		if err := step(scChanged, s.backup, b.ds.bytes); err != nil {
			return err
		}
	}
	// What a scheduled backup of a snapshot sees: a copy of the volume (new inodes and ctimes,
	// the same mtimes) at the path the parent was taken from, differing from the parent in the
	// 1% of files the change touched (now reverted) and the appended file.
	if err := b.ds.revert(); err != nil {
		return err
	}
	if err := b.ds.recopy(ctx); err != nil {
		return err
	}
	if s.incremental {
		if err := step(scCopy, s.backup, b.ds.bytes); err != nil {
			return err
		}
	} else if _, err := b.exec(ctx, s, fmt.Sprintf("copy-r%d", rep), s.backup); err != nil {
		return err // the dataset, copied again (not measured) for the restore to verify
	}

	restoreDir, release, err := b.restoreTarget(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, release()) }()
	if err := b.coldRepository(s); err != nil {
		return err
	}
	if err := step(scRestore, s.restore(restoreDir), b.ds.bytes); err != nil {
		return err
	}
	return b.verifyRestore(s, restoreDir, fmt.Sprintf("%-22s", label+":"))
}

// coldRepository drops the session's repository from the page cache before a restore, unless
// -warm-restore.
func (b *bench) coldRepository(s *session) error {
	if b.opt.warmRestore {
		return nil
	}
	syscall.Sync()
	if err := dropCached(s.stored); err != nil {
		return fmt.Errorf("dropping the repository from the page cache: %w", err)
	}
	return nil
}

// result is one measured step.
type result struct {
	Tool      string  `json:"tool"`
	Target    string  `json:"target"`
	Scenario  string  `json:"scenario"`
	Run       int     `json:"run"`
	Seconds   float64 `json:"seconds"`
	Bytes     int64   `json:"bytes"`           // what MiB/s is computed from
	Files     int64   `json:"files,omitempty"` // the suite's files, what files/s is computed from
	MiBps     float64 `json:"mib_per_s"`
	MaxRSSKiB int64   `json:"max_rss_kib"`
	AnonKiB   int64   `json:"max_anon_kib"`   // peak RssAnon, sampled every 20 ms: MaxRSSKiB without the binary's mapped pages
	CPU       float64 `json:"cpu_seconds"`    // user + system time of the process
	Note      string  `json:"note,omitempty"` // the tool's own summary line
}

// exec runs one command of a session, logging its output, and measures it.
func (b *bench) exec(ctx context.Context, s *session, step string, args []string) (result, error) {
	logPath := filepath.Join(b.opt.work, "logs", fmt.Sprintf("%s-%s-%s.log", s.tool, s.target, step))
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	rusage := logPath + ".rusage"
	cmd := exec.CommandContext(ctx, self, cat([]string{"measure", s.bin}, args...)...)
	cmd.Env = append(os.Environ(), append(s.env, rusageEnv+"="+rusage)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	logText := fmt.Sprintf("$ %s %s\n%s\nexit: %v, %.3f s\n", s.bin, strings.Join(args, " "), out.String(), err, elapsed.Seconds())
	if werr := os.WriteFile(logPath, []byte(logText), 0o644); werr != nil {
		return result{}, werr
	}
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %v\n%s(log: %s)", filepath.Base(s.bin), strings.Join(args, " "), err, tail(out.String(), 15), logPath)
	}
	res := result{Seconds: elapsed.Seconds(), Note: summaryLine(s.tool, out.String())}
	if err := readRusage(rusage, &res); err != nil {
		return result{}, fmt.Errorf("reading the rusage of %s: %w", filepath.Base(s.bin), err)
	}
	_ = os.Remove(rusage)
	return res, nil
}

// summaryLine picks the line of a tool's output that says what a backup did.
func summaryLine(tool, out string) string {
	prefix := map[string]string{"ours": "snapshot ", "restic": "Files:", "kopia": "Files:"}[strings.TrimSuffix(strings.TrimSuffix(tool, "-zstd"), "-s2")]
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
	case "ours", "ours-s2":
		return strings.Contains(note, fmt.Sprintf("%d files, ", files)) && strings.Contains(note, fmt.Sprintf("(%d unchanged, ", files))
	case "restic":
		return strings.Contains(note, fmt.Sprintf("0 new, 0 changed, %d unmodified", files))
	}
	return true
}
