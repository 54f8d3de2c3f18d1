package main

import (
	"github.com/spf13/cobra"

	"stork.dev/stork/backup/engine/repocli"
	"stork.dev/stork/internal/cli"
)

func main() { cli.Main(newRoot()) }

func newRoot() *cobra.Command {
	root := repocli.Command()
	root.Use = "stork-repo"
	root.SilenceUsage, root.SilenceErrors = true, true
	return root
}
