package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"stork.dev/stork/backup/engine/repocli"
	"stork.dev/stork/internal/cli"
	"stork.dev/stork/internal/version"
)

func main() { cli.Main(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "storkctl",
		Short:         "Stork's command line: snapshots, backups and restores of Kubernetes applications",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print storkctl's version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	})
	root.AddCommand(repocli.Command(), snapshotCommand(), restoreCommand(), backupCommand(), statusCommand())
	return root
}
