package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storkv1 "stork.dev/stork/api/v1alpha1"
	"stork.dev/stork/internal/units"
)

// backupCommand lists and follows Backups: the copies of Snapshots in backup locations, made by
// node agents or data mover pods, whichever the volume's driver uses.
func backupCommand() *cobra.Command {
	f := &kubeFlags{}
	cmd := &cobra.Command{Use: "backup", Short: "List Backups and follow their volumes' copies"}
	f.register(cmd)

	get := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List Backups",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			var list storkv1.BackupList
			if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSNAPSHOT\tLOCATION\tPHASE\tVOLUMES\tDONE\tTOTAL\tAGE")
			for _, b := range list.Items {
				if len(args) == 1 && b.Name != args[0] {
					continue
				}
				p := b.Status.Progress
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", b.Name, b.Spec.SnapshotName, b.Spec.BackupLocation, b.Status.Phase,
					p.ItemsDone, p.ItemsTotal, units.Bytes(p.BytesDone), units.Bytes(p.BytesTotal), age(b.CreationTimestamp))
			}
			return w.Flush()
		},
	}

	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a Backup: phase, conditions and each volume's copy (with --wait, follow it to the end)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := f.client()
			if err != nil {
				return err
			}
			b := &storkv1.Backup{}
			key := client.ObjectKey{Namespace: ns, Name: args[0]}
			if err := c.Get(cmd.Context(), key, b); err != nil {
				return err
			}
			if f.wait {
				err := waitFor(cmd, f.timeout, "copying", func(ctx context.Context) (string, storkv1.Progress, bool, error) {
					if err := c.Get(ctx, key, b); err != nil {
						return "", storkv1.Progress{}, false, err
					}
					done := b.Status.CompletionTime != nil
					return string(b.Status.Phase), b.Status.Progress, done, nil
				})
				if err != nil {
					return err
				}
			}
			printBackup(cmd.OutOrStdout(), b)
			return nil
		},
	}
	f.registerWait(describe)
	cmd.AddCommand(get, describe)
	return cmd
}

// printBackup writes a Backup's state, one line per volume with its copy's progress and the
// driver's last word (for the csi driver, which mover pod runs on which node).
func printBackup(out io.Writer, b *storkv1.Backup) {
	st := b.Status
	fmt.Fprintf(out, "Backup %s/%s of Snapshot %s to %s\nPhase: %s\nProgress: %s of %s (%s read, %s unchanged since the previous backup), %d of %d volumes\n",
		b.Namespace, b.Name, b.Spec.SnapshotName, b.Spec.BackupLocation, st.Phase, units.Bytes(st.Progress.BytesDone),
		units.Bytes(st.Progress.BytesTotal), units.Bytes(st.Progress.BytesDone-st.Progress.BytesSkipped), units.Bytes(st.Progress.BytesSkipped),
		st.Progress.ItemsDone, st.Progress.ItemsTotal)
	printConditions(out, st.Conditions)
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nCLAIM\tDRIVER\tZONE\tPHASE\tDONE\tTOTAL\tUNCHANGED\tFILES\tBACKUP ID\tMESSAGE")
	for _, v := range st.Volumes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", v.ClaimName, v.Driver, v.Topology.Zone, v.Phase,
			units.Bytes(v.Progress.BytesDone), units.Bytes(v.Progress.BytesTotal), units.Bytes(v.Progress.BytesSkipped), v.Progress.ItemsDone, v.Progress.ItemsTotal,
			v.RepositorySnapshotID, v.Message)
	}
	_ = w.Flush()
}
