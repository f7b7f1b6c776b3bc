package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/internal/bench"
)

func init() {
	benchCmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure storeloop beside raw NATS/JetStream baselines, in one run on an embedded server",
	}
	var ops int
	writes := &cobra.Command{
		Use:   "writes",
		Short: "Store inserts vs the naive request→publish→reply hop and raw publishes, per fsync mode",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ops < 100 {
				return usageError{fmt.Errorf("--ops must be at least 100")}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "storeloop bench writes: %d writes per scenario, %s/%s, %d CPUs, data in the OS temp dir\n\n", ops, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
			_, err := bench.Writes(cmd.Context(), out, ops)
			return err
		},
	}
	writes.Flags().IntVar(&ops, "ops", 5000, "writes per scenario")
	benchCmd.AddCommand(writes)
	rootCmd.AddCommand(benchCmd)
}
