// Command backup (`make bench-backup`) compares Stork's backup engine (stork-repo: the commands
// of `storkctl repo`) with restic and kopia on the same generated dataset, against a local
// directory repository and a local MinIO bucket. It is a benchmark run by hand, not a test.
//
// The dataset is made deterministically from -seed and kept in the work directory for reuse: one
// incompressible 1 GiB file, 512 MiB of log-like text (Zipf-distributed words) in 8 files, and
// 20,000 files of 4–64 KiB, half random and half text, in 100 directories; -scale multiplies every
// size and the number of small files.
//
// The dataset is read once before the first step (a warm page cache for every tool), and each
// repetition starts with the next tool in turn. For every tool and target, on a fresh repository,
// it measures: (a) the initial backup, (b) an unchanged re-backup (each tool picks the previous
// snapshot as parent by itself), (c) a backup
// after 1% of the small files were rewritten and 4 MiB were appended to one text file (the same
// change for every tool), (d) a backup of a `cp -a` copy of the dataset, put at the same path after
// the change was undone (new inodes and ctimes, the same mtimes: what a scheduled backup of a
// volume's snapshot copy sees; it differs from its parent, (c), in the changed files), and (e) a
// restore of the latest snapshot into an empty directory on a freshly made ext4 (as root; see
// restorefs.go for why, -restore-into work-dir for the work directory), which must match the
// source file for file (size and SHA-256). It reports wall time,
// MiB/s, the child process's peak RSS and the repository size after (a), as tables and as JSON,
// and the machine's speed before every round and after the last (calibrate.go: a fixed zstd and
// BLAKE3 probe; this VM's speed moves by a third within minutes).
//
// Caches: restic's --cache-dir and kopia's --cache-directory point at a fresh directory per
// repository, kept across that repository's four steps (as a node agent would keep them) and
// removed with the repository. Stork keeps no local cache. The page cache cannot be dropped here:
// every tool reads a warm dataset; `sync` runs before every step. Kopia's automatic maintenance,
// which would otherwise run a full GC at the end of the first snapshot, is turned off, as Velero
// does (it runs maintenance as separate jobs); restic and Stork run none during a backup.
//
// -suites adds trees shaped to stress one thing each (suites.go), with the same tools, targets
// and -scale: files (1,000,000 files of 1–16 KiB, 100 to a directory: backup, unchanged re-backup,
// restore, check, and a prune after the first snapshot is forgotten), empty (5,000,000 empty
// files, 1,000 to a directory: backup, unchanged, restore) and large (one 8 GiB file: backup and
// restore), reflink (root only: one 2 GiB file on a loop-mounted XFS image, a backup of a
// reflink clone, then of a second clone with 1% rewritten, ours naming the first as its parent)
// and crash (the files tree, ours only: a backup killed with SIGKILL, checked, run again,
// restored, checked with --read-data, then a damaged pack that check must name). Their tables
// give files/s (MiB/s for one file).
//
// Peak RSS is measured honestly (measure.go): every measured command runs under a small
// `measure` process of this binary, since a child started straight from the benchmark would
// inherit the benchmark's own peak RSS. Next to it, the peak of anonymous memory (RssAnon,
// sampled every 20 ms) leaves out the pages of the tool's binary that are mapped.
//
//	go run ./hack/bench/backup -scale 0.02             # a quick run, about 45 MiB of data
//	go run ./hack/bench/backup -tools ours,restic -targets file -repeat 3
//	go run ./hack/bench/backup -suites files,empty,large -scale 0.1 -targets file   # minutes
//
// Layer: tests. May import: lib, api, engine, drivers, kit, controllers, cmd, testkit, tests.
package main
