package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
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
	scCopy      = "cp -a copy, 1% changed"
	scRestore   = "restore"
)

var scenarios = []string{scInitial, scUnchanged, scChanged, scCopy, scRestore}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "copy-tool" {
		err = copyTool(ctx, os.Args[2:])
	} else if len(os.Args) > 1 && os.Args[1] == "measure" {
		err = measure(os.Args[2:])
	} else {
		err = run(ctx)
	}
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
	suites  []string
	targets []string
	repeat  int
	json    string
	// restoreFS: where restores write; restoreFill: how full the dataset makes a fresh-ext4
	// target, in percent (restorefs.go).
	restoreFS   string
	restoreFill int
	// warmRestore: restore from a repository still in the page cache (the pages its backups
	// left); by default they are dropped first (helpers.go, dropCached).
	warmRestore bool
	// keepDatasets keeps the suites' datasets (up to 8 GiB each) for the next run.
	keepDatasets bool
	// s3Latency is added to every request the tools send to MinIO (minio.go, delayProxy).
	s3Latency time.Duration
}

// bench holds what one run shares: paths, binaries, the dataset, MinIO and the results.
type bench struct {
	opt     options
	root    string // the stork module's directory
	bins    map[string]string
	ds      *dataset
	minio   *minioServer
	report  report
	srcSums map[string]fileSum // the current dataset's sums, taken as it is read before the first run
	cal     *calibrator
}

func run(ctx context.Context) error {
	var o options
	var tools, targets, suites string
	flag.StringVar(&o.work, "work", filepath.Join(os.TempDir(), "stork-bench-backup"), "work directory: dataset, repositories, logs")
	flag.Float64Var(&o.scale, "scale", 1, "multiplies every size and the number of small files (0.02 for a quick run)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated dataset")
	flag.StringVar(&tools, "tools", "ours,restic,kopia", "tools to compare: ours, ours-s2 (a repository with S2 compression), restic, kopia, kopia-zstd (kopia with zstd-fastest), copy (the bytes moved and nothing else: the machine's floor)")
	flag.StringVar(&targets, "targets", "file,minio", "repository targets: file (local directory), minio (S3 on a local MinIO)")
	flag.StringVar(&suites, "suites", suiteStandard, "what to run: standard (the dataset above, five steps), files (1,000,000 files of 1–16 KiB: backup, unchanged, restore, check, prune), empty (5,000,000 empty files), large (one 8 GiB file), reflink (one 2 GiB file in reflink snapshots on a loop-mounted XFS, root only: full backup, then the next snapshot with 1% changed), crash (the files tree, ours only: kill -9 mid-backup, resume, restore, check, a damaged pack); -scale applies to each")
	flag.IntVar(&o.repeat, "repeat", 1, "runs per cell; tables show the median")
	flag.StringVar(&o.json, "json", "", "JSON report (default WORK/bench-backup.json)")
	flag.StringVar(&o.restoreFS, "restore-into", defaultRestoreFS(), "where restores write: fresh-ext4 (a new ext4 on a loop device for each restore, as a new volume; root only) or work-dir (WORK/restore)")
	flag.BoolVar(&o.warmRestore, "warm-restore", false, "restore from a repository still in the page cache, as right after its backup (default: its pages are dropped before each restore, as for a restore days later)")
	flag.BoolVar(&o.keepDatasets, "keep-datasets", false, "keep the suites' datasets (files, empty, large: up to 8 GiB each) for the next run instead of deleting them when the suite ends; the standard dataset (2 GiB) is always kept")
	flag.DurationVar(&o.s3Latency, "s3-latency", 0, "added to every request the tools send to MinIO, as a cloud store's round trip would be (e.g. 20ms); the bench's own requests go straight")
	flag.IntVar(&o.restoreFill, "restore-fs-fill", 25, "with fresh-ext4: percent of the file system's data blocks that the restored dataset fills (80: the size used before 2026-12-07)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	o.tools, o.targets, o.suites = splitList(tools), splitList(targets), splitList(suites)
	for _, s := range o.suites {
		if !slices.Contains(suiteNames, s) {
			return fmt.Errorf("-suites: unknown suite %q (known: %s)", s, strings.Join(suiteNames, ", "))
		}
	}
	for _, t := range o.tools {
		if !slices.Contains([]string{"ours", "ours-s2", "restic", "kopia", "kopia-zstd", "copy"}, t) {
			return fmt.Errorf("-tools: unknown tool %q", t)
		}
	}
	for _, t := range o.targets {
		if t != "file" && t != "minio" {
			return fmt.Errorf("-targets: unknown target %q", t)
		}
	}
	if o.restoreFS != restoreFresh && o.restoreFS != restoreWork {
		return fmt.Errorf("-restore-into: %q is neither %s nor %s", o.restoreFS, restoreFresh, restoreWork)
	}
	if o.restoreFill < 1 || o.restoreFill > 90 {
		return fmt.Errorf("-restore-fs-fill: %d is not a percentage between 1 and 90", o.restoreFill)
	}
	if o.restoreFS == restoreFresh && os.Getuid() != 0 {
		return fmt.Errorf("-restore-into %s needs root (it loop-mounts a file system); use -restore-into %s", restoreFresh, restoreWork)
	}
	if o.scale <= 0 || o.repeat < 1 || len(o.tools) == 0 || len(o.targets) == 0 || len(o.suites) == 0 {
		return errors.New("-scale must be > 0, -repeat ≥ 1, and -tools, -targets and -suites not empty")
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
	repoCache := "; the repository's files dropped from the page cache before each restore"
	if o.warmRestore {
		repoCache = "; restores read the repository as its backups left it in the page cache (-warm-restore)"
	}
	b.report.Settings = map[string]any{
		"scale": o.scale, "seed": o.seed, "suites": o.suites, "repeat": o.repeat, "tools": o.tools, "targets": o.targets,
		"mib_per_s": "dataset bytes / wall seconds for every backup (also unchanged and 1% changed); restore: bytes restored",
		"caches":    "restic --cache-dir and kopia --cache-directory fresh per repository, kept across its steps; page cache warm for backups; sync before each step" + repoCache,
		"kopia":     "default policy (no compression), automatic maintenance off (as in Velero); kopia-zstd: global policy --compression zstd-fastest",
		"restic":    "repository version 2, compression auto",
		"restore":   "into " + o.restoreFS + fmt.Sprintf(" (fresh-ext4: a new ext4 that the dataset fills to %d%%, journal and inode tables written by mkfs, on a loop device with direct I/O, made before each restore and not timed)", o.restoreFill),
		"copy":      "reference, not a backup tool: files concatenated into 32 MiB objects with a manifest, 4 objects in flight (a directory: one syncfs at the end; MinIO: no body SHA-256); its restore writes the files back; it runs no unchanged or 1% step",
	}

	out, err := output(ctx, "", "go", "list", "-m", "-f", "{{.Dir}}")
	if err != nil || !fileExists(filepath.Join(out, "cmd", "storkctl")) {
		return fmt.Errorf("run this from the stork checkout (go list -m: %q, %v)", out, err)
	}
	b.root = out

	if err := b.prepareTools(ctx); err != nil {
		return err
	}
	b.report.Machine = machineInfo(ctx)
	if b.cal, err = newCalibrator(); err != nil {
		return err
	}
	if slices.Contains(o.targets, "minio") {
		if b.minio, err = startMinIO(ctx, b.root, o.work, o.s3Latency); err != nil {
			return err
		}
		defer b.minio.stop()
	}
	for _, suite := range o.suites {
		if err := b.runSuites(ctx, suite); err != nil {
			return err
		}
	}
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

// runSuites prepares a suite's dataset and runs it for every tool and target, -repeat times.
func (b *bench) runSuites(ctx context.Context, suite string) error {
	o := b.opt
	var err error
	if suite == suiteStandard {
		if b.ds, err = prepareDataset(ctx, planDataset(o.work, o.seed, o.scale)); err != nil {
			return err
		}
		b.report.Dataset = datasetInfo{Dir: b.ds.dir, Files: len(b.ds.files), Bytes: b.ds.bytes, ChangedFiles: len(b.ds.changed), AppendedBytes: b.ds.appendSize}
	} else {
		dir := o.work
		if suite == suiteReflink {
			var unmount func()
			if dir, unmount, err = mountXFS(ctx, planSuite(o.work, suite, o.seed, o.scale)); err != nil {
				return err
			}
			defer unmount()
		}
		if b.ds, err = prepareDataset(ctx, planSuite(dir, suite, o.seed, o.scale)); err != nil {
			return err
		}
		if b.report.Suites == nil {
			b.report.Suites = map[string]datasetInfo{}
		}
		b.report.Suites[suite] = datasetInfo{Dir: b.ds.dir, Files: len(b.ds.files), Bytes: b.ds.bytes}
	}
	// Read the dataset once, so that the first tool does not pay for a cold page cache (it
	// did: measured 10.5 s when our engine ran first, 5.8 s when second). The sums verify
	// restores.
	if b.srcSums, err = sumTree(b.ds.dir); err != nil {
		return err
	}
	fmt.Printf("\nsuite %s, dataset %s: %d files, %s; tools %s; targets %s; %d run(s) each\n\n", suite,
		b.ds.dir, len(b.ds.files), humanBytes(b.ds.bytes), strings.Join(o.tools, ","), strings.Join(o.targets, ","), o.repeat)
	for rep := 1; rep <= o.repeat; rep++ {
		b.calibrate(suite, fmt.Sprintf("before run %d", rep))
		// Each run starts with another tool, so that what one leaves behind (dirty pages,
		// deleted inodes) does not always fall on the same one.
		order := append(slices.Clone(o.tools[(rep-1)%len(o.tools):]), o.tools[:(rep-1)%len(o.tools)]...)
		for _, target := range o.targets {
			for _, tool := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				run := b.runOne
				if suite != suiteStandard {
					run = func(ctx context.Context, tool, target string, rep int) error {
						return b.runSuite(ctx, suite, tool, target, rep)
					}
				}
				if err := run(ctx, tool, target, rep); err != nil {
					msg := fmt.Sprintf("%s %s %s run %d: %v", suite, tool, target, rep, err)
					fmt.Printf("FAILED %s\n", msg)
					b.report.Failures = append(b.report.Failures, msg)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.calibrate(suite, "after the last run")
	if suite == suiteStandard {
		b.printTables()
	} else {
		b.printSuiteTable(suite)
	}
	fmt.Println(b.report.calibrationLine(suite))
	// The standard dataset is always kept; reflink's lives in its own XFS image.
	if suite == suiteStandard || suite == suiteReflink || o.keepDatasets {
		return nil
	}
	// Left behind, they filled the disk until the local driver's e2e nodes were NearlyFull.
	return errors.Join(os.RemoveAll(b.ds.dir), os.Remove(b.ds.dir+".done"))
}
