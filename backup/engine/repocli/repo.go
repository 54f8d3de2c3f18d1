package repocli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/catalog"
	"stork.dev/stork/backup/engine/objstore"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/internal/cli"
	"stork.dev/stork/internal/units"
)

// repoFlags say which repository to open and how; they mirror a BackupLocation's fields so that
// the same bucket can be reached without a cluster (break-glass restore).
type repoFlags struct {
	location       string
	s3Endpoint     string
	s3Region       string
	s3PathStyle    bool
	credentialsDir string
	passphraseFile string
	rawKeyFile     string
	indexMemory    string
	cacheDir       string
	noCache        bool
}

func (f *repoFlags) register(cmd *cobra.Command) {
	p := cmd.PersistentFlags()
	p.StringVar(&f.location, "location", "", "repository URL: s3://BUCKET[/PREFIX], gs://…, azblob://…, file:///DIR")
	p.StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3 endpoint URL for S3-compatible stores such as MinIO")
	p.StringVar(&f.s3Region, "s3-region", "", "S3 region (default us-east-1)")
	p.BoolVar(&f.s3PathStyle, "s3-path-style", false, "address S3 buckets by path (most S3-compatible stores need it)")
	p.StringVar(&f.credentialsDir, "credentials-dir", "", "directory with one file per credential key, as a mounted Secret: "+
		"accessKeyID, secretAccessKey[, sessionToken] (s3); serviceAccount.json (gs); accountName, accountKey (azblob)")
	p.StringVar(&f.passphraseFile, "passphrase-file", "", "file holding the repository passphrase (or set STORK_PASSPHRASE)")
	p.StringVar(&f.rawKeyFile, "raw-key-file", "", "file holding a raw 32-byte repository key, instead of a passphrase")
	p.StringVar(&f.cacheDir, "cache-dir", "", "local directory for what the repository never changes (snapshot manifests, sealed), one subdirectory per repository location (default $XDG_CACHE_HOME/stork/repos or ~/.cache/stork/repos)")
	p.BoolVar(&f.noCache, "no-cache", false, "keep nothing on local disk between runs: every snapshot manifest is read from the store")
	p.StringVar(&f.indexMemory, "index-memory", "", "memory the blob index may take before it spills to a file on disk (about 100 bytes a blob), e.g. 64Mi or 1Gi (default 256Mi, or a quarter of the container's memory limit if less)")
}

func (f *repoFlags) storeConfig() (objstore.Config, error) {
	if f.location == "" {
		return objstore.Config{}, errors.New("--location is required")
	}
	cfg := objstore.Config{URL: f.location, S3: objstore.S3Options{Endpoint: f.s3Endpoint, Region: f.s3Region, ForcePathStyle: f.s3PathStyle}}
	if f.credentialsDir == "" {
		return cfg, nil
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(f.credentialsDir, name))
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return strings.TrimSpace(string(b)), err
	}
	var err error
	c := &cfg.Credentials
	for name, dst := range map[string]*string{
		"accessKeyID": &c.AccessKeyID, "secretAccessKey": &c.SecretAccessKey, "sessionToken": &c.SessionToken,
		"accountName": &c.AzureAccountName, "accountKey": &c.AzureAccountKey,
	} {
		if *dst, err = read(name); err != nil {
			return cfg, fmt.Errorf("reading credential %s: %w", name, err)
		}
	}
	sa, err := read("serviceAccount.json")
	if err != nil {
		return cfg, fmt.Errorf("reading credential serviceAccount.json: %w", err)
	}
	c.GCSServiceAccountJSON = []byte(sa)
	return cfg, nil
}

func (f *repoFlags) userKey() (repo.UserKey, error) {
	switch {
	case f.rawKeyFile != "" && f.passphraseFile != "":
		return repo.UserKey{}, errors.New("give --passphrase-file or --raw-key-file, not both")
	case f.rawKeyFile != "":
		b, err := os.ReadFile(f.rawKeyFile)
		if err != nil {
			return repo.UserKey{}, fmt.Errorf("reading --raw-key-file: %w", err)
		}
		return repo.UserKey{Raw: b}, nil
	case f.passphraseFile != "":
		b, err := os.ReadFile(f.passphraseFile)
		if err != nil {
			return repo.UserKey{}, fmt.Errorf("reading --passphrase-file: %w", err)
		}
		return repo.UserKey{Passphrase: strings.TrimRight(string(b), "\r\n")}, nil
	case os.Getenv("STORK_PASSPHRASE") != "":
		return repo.UserKey{Passphrase: os.Getenv("STORK_PASSPHRASE")}, nil
	}
	return repo.UserKey{}, errors.New("no repository key: give --passphrase-file, --raw-key-file or STORK_PASSPHRASE (there is no default key)")
}

// repoCacheDir is the repository's directory in the local cache, named by a hash of where the
// repository is (so two repositories never share one), or "" for none.
func (f *repoFlags) repoCacheDir(cfg objstore.Config) string {
	if f.noCache {
		return ""
	}
	root := f.cacheDir
	if root == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "" // no home: no cache, as with --no-cache
		}
		root = filepath.Join(base, "stork", "repos")
	}
	return filepath.Join(root, cfg.CacheName())
}

// open opens the store and the repository, or with init makes the repository.
func (f *repoFlags) open(ctx context.Context, init *repo.InitOptions) (*objstore.Store, *repo.Repository, error) {
	cfg, err := f.storeConfig()
	if err != nil {
		return nil, nil, err
	}
	key, err := f.userKey()
	if err != nil {
		return nil, nil, err
	}
	var indexMemory int64 // 0: the default
	if f.indexMemory != "" {
		q, err := resource.ParseQuantity(f.indexMemory)
		if err != nil || q.Value() <= 0 {
			return nil, nil, fmt.Errorf("--index-memory %q: want a positive size such as 256Mi or 1Gi", f.indexMemory)
		}
		indexMemory = q.Value()
	}
	s, err := objstore.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	var r *repo.Repository
	if init != nil {
		r, err = repo.Init(ctx, s, key, *init)
	} else {
		r, err = repo.OpenWith(ctx, s, key, repo.OpenOptions{IndexMemory: indexMemory, CacheDir: f.repoCacheDir(cfg)})
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, r, nil
}

// Command is the repository command line: init, backup, restore, ls, check, forget, prune and
// backups on a repository named by --location. storkctl mounts it as "repo"; stork-repo is it.
func Command() *cobra.Command {
	f := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Work on a backup repository directly, with no cluster (break-glass backups and restores)",
	}
	f.register(cmd)
	root := cmd
	withRepo := func(run func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			s, r, err := f.open(cmd.Context(), nil)
			if err != nil {
				return err
			}
			for _, err := range r.IndexDamage() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: skipped %v (run %s check)\n", err, root.CommandPath())
			}
			defer s.Close()
			defer r.Close()
			return run(cmd.Context(), cmd, r, args)
		}
	}

	var initOpts repo.InitOptions
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new, empty repository at --location",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, r, err := f.open(cmd.Context(), &initOpts)
			if err != nil {
				return err
			}
			defer s.Close()
			defer r.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "created repository %s at %s\n", r.Config().ID, s)
			return nil
		},
	}
	initCmd.Flags().StringVar(&initOpts.Compression, "compression", repo.CompressionZstd,
		"codec of data blobs: zstd (smaller repositories) or s2 (faster backups and restores, larger repositories); fixed for the repository")
	cmd.AddCommand(initCmd)

	var tags []string
	var parentRef string
	var noParent, strict bool
	backup := &cobra.Command{
		Use:   "backup DIR",
		Short: "Back up a directory; files unchanged since the last backup of the same directory are not read again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Listed while the repository opens: its key derivation keeps a core busy meanwhile.
			pre := archive.StartPrescan(cmd.Context(), args[0])
			defer pre.Stop()
			return withRepo(func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, args []string) error {
				t, err := cli.ParseMap("tag", "KEY=VALUE", tags)
				if err != nil {
					return err
				}
				opts := archive.BackupOptions{Tags: t, StrictChangeDetection: strict, Prescan: pre}
				abs, err := filepath.Abs(args[0])
				if err != nil {
					return err
				}
				var parent *repo.SnapshotInfo
				switch {
				case parentRef != "" && noParent:
					return errors.New("--parent and --no-parent contradict each other: give one")
				case parentRef != "":
					s, err := r.FindSnapshot(ctx, parentRef)
					if err != nil {
						return fmt.Errorf("--parent: %w", err)
					}
					parent = &s
				case !noParent:
					if parent, err = latestOf(ctx, r, abs); err != nil {
						return err
					}
				}
				if parent != nil {
					opts.Parent = &parent.ID
					fmt.Fprintf(cmd.ErrOrStderr(), "parent snapshot %s (%s)\n", parent.ID.String()[:12], parent.Time.Format(time.RFC3339))
				}
				bar := cli.NewBar(cmd.ErrOrStderr(), "backing up")
				opts.Progress = progressOf(bar)
				id, snap, err := archive.Backup(ctx, r, abs, opts)
				bar.Finish()
				if err != nil {
					return err
				}
				s := snap.Summary
				fmt.Fprintf(cmd.OutOrStdout(), "snapshot %s saved: %d files, %s (%d unchanged, %s not read, %s read), %s new, %s stored, in %.1fs\n",
					id.String()[:12], s.Files, units.Bytes(s.Bytes), s.FilesReused, units.Bytes(s.BytesReused), units.Bytes(s.Bytes-s.BytesReused),
					units.Bytes(s.BytesAdded), units.Bytes(s.BytesStored), float64(s.DurationMS)/1000)
				return nil
			})(cmd, args)
		},
	}
	backup.Flags().StringArrayVar(&tags, "tag", nil, "KEY=VALUE to record with the snapshot (repeatable)")
	backup.Flags().BoolVar(&noParent, "no-parent", false, "back up with no parent: read every file, and record none")
	backup.Flags().StringVar(&parentRef, "parent", "",
		"snapshot (ID or unique prefix) to take unchanged files from, instead of the last backup of DIR: the backup of the previous snapshot copy of a volume, say "+
			"(if that copy is still on disk and shares blocks with DIR, changed files are read only where they differ)")
	backup.Flags().BoolVar(&strict, "strict-change-detection", false,
		"read every file, even those whose path, size, mtime, mode and owner match the parent's (for writers that rewrite in place and set mtime back)")
	cmd.AddCommand(backup)

	var includes, restoreTags []string
	var verify bool
	restore := &cobra.Command{
		Use:   "restore SNAPSHOT TARGET",
		Short: "Restore a snapshot (ID, ID prefix or 'latest', e.g. latest --tag pvc=data) into a directory; --path restores chosen files and directories only",
		Args:  cobra.ExactArgs(2),
		RunE: withRepo(func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, args []string) error {
			snap, err := findSnapshot(ctx, r, args[0], restoreTags)
			if err != nil {
				return err
			}
			if verify && len(includes) > 0 {
				return fmt.Errorf("--verify compares the whole snapshot with TARGET: restore without --path, or verify without it")
			}
			bar := cli.NewBar(cmd.ErrOrStderr(), "restoring")
			start := time.Now()
			err = archive.Restore(ctx, r, snap.ID, args[1], archive.RestoreOptions{Include: includes, Progress: progressOf(bar)})
			bar.Finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %s into %s in %.1fs\n", snap.ID.String()[:12], args[1], time.Since(start).Seconds())
			if !verify {
				return nil
			}
			bar = cli.NewBar(cmd.ErrOrStderr(), "verifying")
			start = time.Now()
			rep, err := archive.Verify(ctx, r, snap.ID, args[1], archive.VerifyOptions{Progress: progressOf(bar)})
			bar.Finish()
			if err != nil {
				return err
			}
			if err := rep.Err(); err != nil {
				return fmt.Errorf("%s differs from snapshot %s: %w", args[1], snap.ID.String()[:12], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "verified %d files, %s, against the snapshot's checksums in %.1fs\n", rep.Files, units.Bytes(rep.Bytes), time.Since(start).Seconds())
			return nil
		}),
	}
	restore.Flags().StringArrayVar(&includes, "path", nil, "file or directory inside the snapshot to restore, with what is below it (repeatable; e.g. --path db/pg_wal); one that is not there is an error")
	// --include was the flag's first name; it stays an alias, as Restore.spec.paths names it "paths".
	restore.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "include" {
			name = "path"
		}
		return pflag.NormalizedName(name)
	})
	restore.Flags().BoolVar(&verify, "verify", false, "read TARGET back once restored and compare every file with the checksums the backup recorded")
	restore.Flags().StringArrayVar(&restoreTags, "tag", nil, "KEY=VALUE the snapshot must carry (repeatable): 'latest' is then the newest of those")
	cmd.AddCommand(restore)

	var lsTags []string
	ls := &cobra.Command{
		Use:   "ls [SNAPSHOT]",
		Short: "List snapshots (those with the --tag values, e.g. --tag namespace=app --tag pvc=data), or the files of one",
		Args:  cobra.MaximumNArgs(1),
		RunE: withRepo(func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, args []string) error {
			filter, err := cli.ParseMap("tag", "KEY=VALUE", lsTags)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				snap, err := findSnapshot(ctx, r, args[0], lsTags)
				if err != nil {
					return err
				}
				return archive.List(ctx, r, snap.Tree, func(p string, n *archive.Node) error {
					_, err := fmt.Fprintf(cmd.OutOrStdout(), "%-8s %10d %s %s\n", n.Type, n.Size, n.MTime.Format(time.RFC3339), p)
					return err
				})
			}
			snaps, err := r.Snapshots(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTIME\tPATH\tFILES\tSIZE\tTAGS")
			for _, s := range snaps {
				if !hasTags(s.Tags, filter) {
					continue
				}
				var tags []string
				for k, v := range s.Tags {
					tags = append(tags, k+"="+v)
				}
				sort.Strings(tags)
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", s.ID.String()[:12], s.Time.Local().Format(time.RFC3339),
					strings.Join(s.Paths, ","), s.Summary.Files, units.Bytes(s.Summary.Bytes), strings.Join(tags, ","))
			}
			return w.Flush()
		}),
	}
	ls.Flags().StringArrayVar(&lsTags, "tag", nil, "KEY=VALUE the snapshots must carry (repeatable)")
	cmd.AddCommand(ls, backupsCommand(withRepo))
	cmd.AddCommand(checkCommand(withRepo), forgetCommand(withRepo), pruneCommand(withRepo))
	return cmd
}

// backupsCommand lists the complete Stork Backups in a repository (their records), with the
// repository snapshot of each volume: what to restore, with repo restore, when no cluster is
// left to ask.
func backupsCommand(withRepo repoRunner) *cobra.Command {
	return &cobra.Command{
		Use:   "backups",
		Short: "List the Stork Backups in the repository, newest last, with each volume's snapshot (restore one with repo restore ID DIR)",
		Args:  cobra.NoArgs,
		RunE: withRepo(func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, _ []string) error {
			recs, err := catalog.Records(ctx, r)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "BACKUP\tCLUSTER\tCOMPLETED\tPHASE\tOBJECTS\tCLAIM\tZONE\tSIZE\tSNAPSHOT")
			for _, s := range recs {
				rec, err := catalog.ReadRecord(ctx, r, s.ID)
				if err != nil {
					fmt.Fprintf(w, "%s\t\t\tunreadable: %v\n", s.ID.String()[:12], err)
					continue
				}
				head := fmt.Sprintf("%s/%s\t%s\t%s\t%s\t%d", rec.Namespace, rec.Name, rec.Cluster, rec.CompletionTime.Local().Format(time.RFC3339), rec.Phase, rec.ResourceCount)
				for _, v := range rec.Volumes {
					id := v.RepositorySnapshotID
					if len(id) > 12 {
						id = id[:12]
					}
					if id == "" {
						id = "(failed: " + v.Message + ")"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", head, v.ClaimName, v.Topology.Zone, units.Bytes(v.Progress.BytesTotal), id)
					head = "\t\t\t\t"
				}
			}
			return w.Flush()
		}),
	}
}

// findSnapshot resolves a snapshot reference among the snapshots with the given tags: the
// break-glass way to name "the newest backup of claim data in namespace app".
func findSnapshot(ctx context.Context, r *repo.Repository, ref string, tags []string) (repo.SnapshotInfo, error) {
	filter, err := cli.ParseMap("tag", "KEY=VALUE", tags)
	if err != nil || len(filter) == 0 {
		if err != nil {
			return repo.SnapshotInfo{}, err
		}
		return r.FindSnapshot(ctx, ref)
	}
	if ref != "latest" {
		s, err := r.FindSnapshot(ctx, ref)
		if err == nil && !hasTags(s.Tags, filter) {
			err = fmt.Errorf("snapshot %s does not carry the tags %v", s.ID.String()[:12], tags)
		}
		return s, err
	}
	s, err := r.Latest(ctx, func(s repo.SnapshotInfo) bool { return hasTags(s.Tags, filter) })
	switch {
	case err != nil:
		return repo.SnapshotInfo{}, err
	case s == nil:
		return repo.SnapshotInfo{}, fmt.Errorf("no snapshot carries the tags %v", tags)
	}
	return *s, nil
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// latestOf returns the newest snapshot of the same path, to back up incrementally from.
func latestOf(ctx context.Context, r *repo.Repository, abs string) (*repo.SnapshotInfo, error) {
	return r.Latest(ctx, func(s repo.SnapshotInfo) bool { return len(s.Paths) == 1 && s.Paths[0] == abs })
}

// progressOf returns the bar's update function, or nil when the bar is not drawn: then no
// totals need counting.
func progressOf(b *cli.Bar) func(archive.Progress) {
	if !b.Active() {
		return nil
	}
	return func(p archive.Progress) { b.Update(p.BytesDone, p.BytesTotal) }
}
