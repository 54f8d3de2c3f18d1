package main

// The suites beyond the standard dataset, each a tree shaped to stress one thing: many small
// files (the walk, the per-file costs and the index), many empty files (nothing but metadata),
// and one large file (how restore and backup of a single file use the cores).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// suite names (-suites).
const (
	suiteStandard = "standard"
	suiteFiles    = "files"
	suiteEmpty    = "empty"
	suiteLarge    = "large"
	suiteReflink  = "reflink"
	suiteCrash    = "crash"
)

var suiteNames = []string{suiteStandard, suiteFiles, suiteEmpty, suiteLarge, suiteReflink, suiteCrash}

// Steps of the suites other than the standard one.
const (
	stBackup    = "backup"
	stUnchanged = "unchanged backup"
	stRestore   = "restore"
	stCheck     = "check"
	stPrune     = "forget first + prune"
	stSnapshot1 = "backup of snapshot 1"
	stSnapshot2 = "snapshot 2, 1% changed"
	stKilled    = "backup killed -9"
	stAfterKill = "backup after the kill"
	stCheckData = "check --read-data"
	stDamaged   = "check of a damaged pack"
)

// suiteSteps lists what each suite measures, in order.
var suiteSteps = map[string][]string{
	suiteFiles:   {stBackup, stUnchanged, stRestore, stCheck, stPrune},
	suiteEmpty:   {stBackup, stUnchanged, stRestore},
	suiteLarge:   {stBackup, stRestore},
	suiteReflink: {stSnapshot1, stSnapshot2},
	suiteCrash:   {stKilled, stAfterKill, stRestore, stCheckData, stDamaged},
}

// planSuite plans a suite's dataset. files: 1,000,000 files of 1–16 KiB (uniform), half log-like
// text and half random, 100 to a directory in a 100×100 fan-out (d000/e00/f0000000.txt): a
// mail spool, a package cache or a build tree. empty: 5,000,000 empty files, 1,000 to a
// directory. large: one file of 8 GiB of random data. reflink: one file of 2 GiB of random
// data on a loop-mounted XFS (see reflinkSnapshot). crash: the files suite's tree, our engine
// only, killed with SIGKILL mid-backup, then resumed, restored and checked, then a pack damaged
// (see crashStep). -scale multiplies the counts and the size.
func planSuite(work, suite string, seed uint64, scale float64) *dataset {
	if suite == suiteCrash {
		suite = suiteFiles // the same tree: generated once for both
	}
	key := fmt.Sprintf("%s-v%d-seed%d-scale%g", suite, genVersion, seed, scale)
	d := &dataset{dir: filepath.Join(work, key), marker: filepath.Join(work, key+".changed"), seed: seed}
	scaled := func(n float64) int64 { return max(1, int64(math.Round(n*scale))) }
	add := func(rel string, size int64, text bool) {
		d.files = append(d.files, fileSpec{rel: rel, size: size, text: text, index: uint64(len(d.files) + 1)})
		d.bytes += size
	}
	r := rand.New(rand.NewPCG(seed, 1))
	switch suite {
	case suiteFiles, suiteCrash:
		for i := range scaled(1e6) {
			text := r.IntN(2) == 0
			ext := map[bool]string{true: "txt", false: "bin"}[text]
			add(fmt.Sprintf("d%03d/e%02d/f%07d.%s", i/10000, i/100%100, i, ext), 1<<10+r.Int64N(15<<10+1), text)
		}
	case suiteEmpty:
		for i := range scaled(5e6) {
			add(fmt.Sprintf("d%03d/e%03d/f%07d", i/100000, i/1000%100, i), 0, false)
		}
	case suiteLarge:
		add("large.bin", scaled(8<<30), false)
	case suiteReflink:
		add("db.bin", scaled(2<<30), false)
	}
	return d
}

// runSuite runs one suite's steps for one tool on one fresh repository.
func (b *bench) runSuite(ctx context.Context, suite, tool, target string, rep int) (err error) {
	s, err := b.newSession(tool, target, rep)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.cleanup(context.WithoutCancel(ctx))) }()
	var restoreDir string
	release := func() error { return nil }
	defer func() { err = errors.Join(err, release()) }()
	label := fmt.Sprintf("%s %s %s", suite, tool, target)
	if b.opt.repeat > 1 {
		label += fmt.Sprintf(" #%d", rep)
	}
	if suite == suiteCrash && tool != "ours" {
		fmt.Printf("%-30s skipped: the crash suite runs our engine only\n", label+":")
		return nil
	}
	for i, args := range s.init {
		if _, err := b.exec(ctx, s, fmt.Sprintf("%s-init%d-r%d", suite, i, rep), args); err != nil {
			return err
		}
	}
	files := int64(len(b.ds.files))
	for _, st := range suiteSteps[suite] {
		if !s.incremental && st != stBackup && st != stRestore && st != stSnapshot1 {
			continue // the copy reference only moves bytes
		}
		var args []string
		switch st {
		case stBackup, stUnchanged:
			args = s.backup
		case stSnapshot1, stSnapshot2:
			snap, err := reflinkSnapshot(ctx, b.ds, st == stSnapshot2)
			if err != nil {
				return err
			}
			defer os.RemoveAll(snap)
			args = slices.Clone(s.backup)
			for i := range args {
				if args[i] == b.ds.dir {
					args[i] = snap
				}
			}
			if st == stSnapshot2 && tool == "ours" {
				// The next snapshot of a volume is another directory: name the parent, as the
				// agent does by the claim's tags.
				args = append(args, "--parent", "latest")
			}
		case stRestore:
			if err := release(); err != nil {
				return err
			}
			if restoreDir, release, err = b.restoreTarget(ctx); err != nil {
				return err
			}
			if err := b.coldRepository(s); err != nil {
				return err
			}
			args = s.restore(restoreDir)
		case stCheck:
			args = s.check
		case stCheckData:
			args = cat(s.check, "--read-data")
		case stKilled, stDamaged:
			if err := b.crashStep(ctx, s, st, label, rep); err != nil {
				return fmt.Errorf("%s: %w", st, err)
			}
			continue
		case stAfterKill:
			args = s.backup
		case stPrune:
			forget, err := s.forgetFirst(ctx, b)
			if err != nil {
				return err
			}
			if _, err := b.exec(ctx, s, fmt.Sprintf("%s-forget-r%d", suite, rep), forget); err != nil {
				return err
			}
			args = s.prune
		}
		syscall.Sync()
		res, err := b.exec(ctx, s, fmt.Sprintf("%s-%s-r%d", suite, strings.Fields(st)[0], rep), args)
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
		res.Tool, res.Target, res.Scenario, res.Run, res.Bytes, res.Files = tool, target, suite+": "+st, rep, b.ds.bytes, files
		res.MiBps = float64(b.ds.bytes) / mib / res.Seconds
		b.report.Runs = append(b.report.Runs, res)
		fmt.Printf("%-30s %-22s %8.2f s %10.0f files/s %8.1f MiB/s  peak RSS %6.0f MiB (anon %6.0f)  CPU %6.1f s\n",
			label+":", st, res.Seconds, float64(files)/res.Seconds, res.MiBps, float64(res.MaxRSSKiB)/1024, float64(res.AnonKiB)/1024, res.CPU)
		if st == stRestore {
			if err := b.verifyRestore(s, restoreDir, fmt.Sprintf("%-30s", label+":")); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyRestore compares a restored tree with the source's sums (taken when the dataset was
// read before the first run), file by file; prefix starts the lines it prints.
func (b *bench) verifyRestore(s *session, restoreDir, prefix string) error {
	got, err := sumTree(s.restored(restoreDir))
	if err != nil {
		return fmt.Errorf("verifying the restore: %w", err)
	}
	if diff := compareSums(b.srcSums, got); diff != "" {
		fmt.Printf("%s RESTORE VERIFICATION FAILED: %s\n", prefix, diff)
		return fmt.Errorf("restored tree differs from the source: %s", diff)
	}
	fmt.Printf("%s restored tree verified: %d files and directories, sizes and SHA-256 equal\n", prefix, len(got))
	return nil
}

// forgetFirst returns the command that deletes a session's first snapshot (not measured; the
// prune after it is).
func (s *session) forgetFirst(ctx context.Context, b *bench) ([]string, error) {
	if s.forget != nil {
		return s.forget, nil
	}
	// kopia deletes snapshots by manifest ID only.
	out, err := outputEnv(ctx, "", s.env, s.bin, cat(s.list, "--json")...)
	if err != nil {
		return nil, err
	}
	var snaps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &snaps); err != nil || len(snaps) == 0 {
		return nil, fmt.Errorf("listing kopia snapshots: %v (%q)", err, tail(out, 3))
	}
	return cat(s.deleteSnapshot, snaps[0].ID, "--delete"), nil
}

// printSuiteTable prints a suite's medians: seconds, files/s (MiB/s for the large file), peak
// RSS, and our ratios to each peer.
func (b *bench) printSuiteTable(suite string) {
	cells := b.medians()
	peers := b.peers()
	rate := func(c cell) string {
		if suite == suiteLarge || suite == suiteReflink {
			return fmt.Sprintf("%.0f MiB/s", c.MiBps)
		}
		return fmt.Sprintf("%.0f/s", float64(len(b.ds.files))/c.Seconds)
	}
	for _, target := range b.opt.targets {
		fmt.Printf("\n== suite %s, target %s — scale %g: %d files, %s; medians of %d run(s) ==\n",
			suite, target, b.opt.scale, len(b.ds.files), humanBytes(b.ds.bytes), b.opt.repeat)
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := []string{"step"}
		for _, t := range b.opt.tools {
			head = append(head, t+" s", "rate", "RSS MiB", "anon")
		}
		for _, p := range peers {
			head = append(head, "÷"+p+" speed", "÷"+p+" RSS")
		}
		fmt.Fprintln(w, strings.Join(head, "\t")+"\t")
		for _, st := range suiteSteps[suite] {
			sc := suite + ": " + st
			row := []string{st}
			for _, t := range b.opt.tools {
				if c, ok := cells[[3]string{t, target, sc}]; ok {
					b.report.Medians = append(b.report.Medians, c)
					row = append(row, fmt.Sprintf("%.2f", c.Seconds), rate(c), fmt.Sprintf("%.0f", c.MaxRSSMiB), fmt.Sprintf("%.0f", c.AnonMiB))
				} else {
					row = append(row, "-", "-", "-", "-")
				}
			}
			row = append(row, ratios(cells, peers, target, sc)...)
			fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
		}
		_ = w.Flush()
	}
	fmt.Println("rate: files ÷ wall seconds (large, reflink: MiB/s); RSS: peak RSS of the process (rusage); anon: peak anonymous memory (RssAnon sampled every 20 ms,\n" +
		"without the mapped pages of the binary); ÷X speed = X's time ÷ ours (>1: we are faster); ÷X RSS = our peak RSS ÷ X's (<1: we use less).")
}

// reflinkSnapshot makes the reflink suite's snapshots of its dataset (on XFS, see mountXFS) as
// the local driver does: a clone sharing every block (cp --reflink=always, as fscopy's
// FICLONE). Snapshot 2 then has 1% of its file rewritten in 20 places, as an app's writes
// between two snapshots would (copy on write gives the rewritten blocks new places). The
// dataset itself is never written. Peers back snapshot 2 up as a new path: restic with or
// without --parent and kopia re-read a file whose size or mtime changed, whole.
func reflinkSnapshot(ctx context.Context, d *dataset, changed bool) (string, error) {
	name := map[bool]string{false: "snap1", true: "snap2"}[changed]
	snap := filepath.Join(filepath.Dir(d.dir), name)
	if err := os.RemoveAll(snap); err != nil {
		return "", err
	}
	if out, err := output(ctx, "", "cp", "-a", "--reflink=always", d.dir, snap); err != nil {
		return "", fmt.Errorf("cloning the dataset: %v: %s", err, out)
	}
	if !changed {
		return snap, nil
	}
	f, err := os.OpenFile(filepath.Join(snap, d.files[0].rel), os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size := d.files[0].size
	piece := max(size/100/20, 1)
	r := rand.New(rand.NewPCG(d.seed, 2))
	buf := make([]byte, piece)
	for i := range int64(20) {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		if _, err := f.WriteAt(buf, i*(size/20)+size/40); err != nil {
			return "", err
		}
	}
	return snap, f.Close()
}

// mountXFS mounts the XFS image of the reflink suite's dataset d (made the first time, sized
// for the dataset and two clones' changes; one per scale) and returns the mount point, under
// which d belongs, and how to unmount.
func mountXFS(ctx context.Context, d *dataset) (string, func(), error) {
	if os.Getuid() != 0 {
		return "", nil, errors.New("suite reflink needs root: it loop-mounts an XFS image")
	}
	bytes := d.bytes
	img, mnt := d.dir+".xfs.img", d.dir+".xfs"
	if !fileExists(img) {
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			return "", nil, err
		}
		if err := os.Truncate(img, bytes*5/4+1<<30); err != nil {
			return "", nil, err
		}
		if out, err := output(ctx, "", "mkfs.xfs", "-q", "-f", "-m", "reflink=1", img); err != nil {
			_ = os.Remove(img)
			return "", nil, fmt.Errorf("mkfs.xfs (xfsprogs; hack/node-deps.sh installs it): %v: %s", err, out)
		}
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", nil, err
	}
	if out, err := output(ctx, "", "mount", "-o", "loop", img, mnt); err != nil {
		return "", nil, fmt.Errorf("mounting %s: %v: %s", img, err, out)
	}
	return mnt, func() { _, _ = output(context.WithoutCancel(ctx), "", "umount", mnt) }, nil
}

// crashStep runs the crash suite's steps that are checks, not measurements. stKilled: a backup
// into the empty repository is killed with SIGKILL once a quarter of the dataset's size is in
// the repository; then no snapshot may be listed and check must pass (the next step, measured,
// backs up again and reuses what was uploaded). stDamaged: one byte of one pack is flipped and
// check --read-data must fail naming that pack (a local repository only).
func (b *bench) crashStep(ctx context.Context, s *session, st, label string, rep int) error {
	step := fmt.Sprintf("crash-%s-r%d", strings.Fields(st)[0], rep)
	switch st {
	case stKilled:
		kctx, kill := context.WithCancel(ctx)
		var stored int64
		go func() {
			defer kill()
			for kctx.Err() == nil {
				if n, err := s.size(kctx); err == nil && n >= b.ds.bytes/4 {
					stored = n
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		start := time.Now()
		_, err := b.exec(kctx, s, step, s.backup)
		kill()
		if err == nil {
			return errors.New("the backup finished before a quarter of the data was stored: nothing was killed")
		}
		killedAt := time.Since(start)
		out, err := outputEnv(ctx, "", s.env, s.bin, cat(s.ls)...)
		if err != nil {
			return err
		}
		if strings.Contains(out, b.ds.dir) {
			return fmt.Errorf("a killed backup is listed as a snapshot: %q", tail(out, 5))
		}
		if _, err := b.exec(ctx, s, step+"-check", s.check); err != nil {
			return fmt.Errorf("check after the kill: %w", err)
		}
		fmt.Printf("%-30s %-22s killed after %.1f s with %s stored; no snapshot listed, check passed\n", label+":", st, killedAt.Seconds(), humanBytes(stored))
	case stDamaged:
		if s.target != "file" {
			fmt.Printf("%-30s %-22s skipped: needs a local repository\n", label+":", st)
			return nil
		}
		pack, err := damageOnePack(filepath.Join(b.opt.work, "repos", s.tool+"-"+s.target))
		if err != nil {
			return err
		}
		_, err = b.exec(ctx, s, step, cat(s.check, "--read-data"))
		if err == nil || !strings.Contains(err.Error(), filepath.Base(pack)) {
			return fmt.Errorf("check --read-data after damaging %s: want a failure naming it, got %v", pack, err)
		}
		fmt.Printf("%-30s %-22s failed naming the damaged pack %s, as it must\n", label+":", st, filepath.Base(pack))
	}
	return nil
}

// damageOnePack flips one byte in the middle of the first pack of the local repository at dir
// and returns its path.
func damageOnePack(dir string) (string, error) {
	var packs []string
	err := filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			packs = append(packs, p)
		}
		return err
	})
	if err != nil || len(packs) == 0 {
		return "", fmt.Errorf("finding a pack in %s: %v (%d found)", dir, err, len(packs))
	}
	slices.Sort(packs)
	f, err := os.OpenFile(packs[0], os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, fi.Size()/2); err != nil {
		return "", err
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, fi.Size()/2); err != nil {
		return "", err
	}
	return packs[0], f.Close()
}
