package repocli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"stork.dev/stork/backup/engine/archive"
	"stork.dev/stork/backup/engine/repo"
	"stork.dev/stork/backup/engine/retention"
	"stork.dev/stork/internal/cli"
	"stork.dev/stork/internal/units"
)

type repoRunner func(run func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, args []string) error) func(*cobra.Command, []string) error

// errCheckFailed makes the command exit non-zero after printing the problems a check found.
var errCheckFailed = errors.New("the repository has problems (listed above)")

func checkCommand(withRepo repoRunner) *cobra.Command {
	var readData bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure; --read-data also reads and verifies every blob",
		Args:  cobra.NoArgs,
		RunE: withRepo(func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, _ []string) error {
			b := cli.NewBar(cmd.ErrOrStderr(), "reading packs")
			start := time.Now()
			rep, err := archive.Check(ctx, r, repo.CheckOptions{ReadData: readData, Progress: func(p repo.CheckProgress) {
				b.Update(p.BytesDone, p.BytesTotal)
			}})
			b.Finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "checked %d snapshots, %d index files, %d packs, %d blobs", rep.Snapshots, rep.IndexFiles, rep.Packs, rep.Blobs)
			if readData {
				fmt.Fprintf(out, ", read %s", units.Bytes(rep.BytesRead))
			}
			fmt.Fprintf(out, " in %.1fs\n", time.Since(start).Seconds())
			for _, n := range rep.Notes {
				fmt.Fprintf(out, "note: %s\n", n)
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(out, "problem: %v\n", p)
			}
			if !rep.OK() {
				return errCheckFailed
			}
			fmt.Fprintln(out, "no problems found")
			return nil
		}),
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read every pack and verify every blob (downloads the whole repository)")
	return cmd
}

func pruneFlags(cmd *cobra.Command, o *repo.PruneOptions) {
	d := repo.DefaultPruneOptions()
	cmd.Flags().DurationVar(&o.Grace, "grace", d.Grace, "how long data stays marked before it is deleted (0 deletes at once when no backup that began earlier is running)")
	cmd.Flags().Float64Var(&o.MaxUnused, "max-unused", d.MaxUnused, "repack packs whose unused share is above this (0-1)")
	cmd.Flags().DurationVar(&o.ClockSkew, "clock-skew", d.ClockSkew, "clock difference between hosts to tolerate")
}

func runPrune(ctx context.Context, cmd *cobra.Command, r *repo.Repository, o repo.PruneOptions) error {
	rep, err := r.Prune(ctx, archive.Referenced, o)
	if rep != nil {
		out := cmd.OutOrStdout()
		verb := "marked"
		if o.DryRun {
			verb = "would mark"
		}
		fmt.Fprintf(out, "%d blobs in use; %s %d packs (%s) for deletion: %d unused, %d repacked, %d left by interrupted backups\n",
			rep.BlobsReferenced, verb, rep.PacksMarked, units.Bytes(rep.BytesMarked), rep.PacksMarked-rep.PacksRepacked-rep.PacksUnindexed, rep.PacksRepacked, rep.PacksUnindexed)
		if rep.MarksSwept > 0 {
			fmt.Fprintf(out, "deleted %d packs (%s), kept %d that new snapshots use, rewrote %d index files\n",
				rep.PacksDeleted, units.Bytes(rep.BytesDeleted), rep.PacksKept, rep.IndexFilesRewritten)
		}
		if locked := rep.LockedSummary(); locked != "" {
			fmt.Fprintln(out, locked)
		}
		for _, w := range rep.Waiting {
			fmt.Fprintf(out, "not deleted yet: %s\n", w)
		}
	}
	return err
}

func pruneCommand(withRepo repoRunner) *cobra.Command {
	o := repo.PruneOptions{}
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete data no snapshot uses, safely while backups run (two phases: mark now, delete after --grace)",
		Args:  cobra.NoArgs,
		RunE: withRepo(func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, _ []string) error {
			return runPrune(ctx, cmd, r, o)
		}),
	}
	pruneFlags(cmd, &o)
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "say what would be marked, change nothing")
	return cmd
}

func forgetCommand(withRepo repoRunner) *cobra.Command {
	var p retention.Policy
	var groupBy []string
	var dryRun, prune bool
	po := repo.PruneOptions{}
	cmd := &cobra.Command{
		Use:   "forget [SNAPSHOT...]",
		Short: "Delete snapshots by ID, or those a --keep-* policy does not keep; --prune then deletes their data",
		RunE: withRepo(func(ctx context.Context, cmd *cobra.Command, r *repo.Repository, args []string) error {
			if len(args) > 0 == !p.Empty() {
				return errors.New("give snapshot IDs or a --keep-* policy (one of the two)")
			}
			var drop []repo.SnapshotInfo
			out := cmd.OutOrStdout()
			if len(args) > 0 {
				for _, ref := range args {
					if ref == "latest" {
						return errors.New("forget needs snapshot IDs; 'latest' is too easy to get wrong")
					}
					s, err := r.FindSnapshot(ctx, ref)
					if err != nil {
						return err
					}
					drop = append(drop, s)
				}
			} else {
				snaps, err := r.Snapshots(ctx)
				if err != nil {
					return err
				}
				ds, err := repo.ApplyRetention(snaps, p, groupBy, time.Local)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
				fmt.Fprintf(w, "ID\tTIME\tGROUP\tVERDICT\n")
				for _, d := range ds {
					verdict := "forget"
					if d.Keep {
						verdict = "keep (" + strings.Join(d.Reasons, ", ") + ")"
					} else {
						drop = append(drop, d.SnapshotInfo)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.ID.String()[:12], d.Time.Local().Format(time.RFC3339), d.Group, verdict)
				}
				if err := w.Flush(); err != nil {
					return err
				}
			}
			for _, s := range drop {
				if dryRun {
					fmt.Fprintf(out, "would forget snapshot %s\n", s.ID.String()[:12])
					continue
				}
				if err := r.Forget(ctx, s.ID); err != nil {
					return err
				}
				fmt.Fprintf(out, "forgot snapshot %s\n", s.ID.String()[:12])
			}
			if prune && !dryRun {
				return runPrune(ctx, cmd, r, po)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVar(&p.Last, "keep-last", 0, "keep the newest N snapshots of each group")
	f.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours")
	f.IntVar(&p.Daily, "keep-daily", 0, "keep the newest snapshot of each of the last N days")
	f.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N weeks")
	f.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months")
	f.IntVar(&p.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last N years")
	f.DurationVar(&p.Within, "keep-within", 0, "keep every snapshot this much newer than the group's newest")
	f.StringSliceVar(&groupBy, "group-by", repo.DefaultGroupBy, "what makes snapshots copies of the same thing: paths, tag:NAME")
	f.BoolVar(&dryRun, "dry-run", false, "say what would be forgotten, change nothing")
	f.BoolVar(&prune, "prune", false, "prune after forgetting")
	pruneFlags(cmd, &po)
	return cmd
}
