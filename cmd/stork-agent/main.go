package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"stork.dev/stork/internal/version"
)

func main() {
	root := &cobra.Command{
		Use:           "stork-agent",
		Short:         "Stork's node agent: storage health and volume work on one node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the agent's version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	})
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "stork-agent:", err)
		os.Exit(1)
	}
}
