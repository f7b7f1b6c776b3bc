package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/events"
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
	benchCmd.AddCommand(writes, rulesBenchCmd())
	rootCmd.AddCommand(benchCmd)
}

// rulesBenchCmd is `storeloop bench rules`: the rule loop beside a raw
// consume → publish → ack loop of the same work (issue 10).
func rulesBenchCmd() *cobra.Command {
	var cfg bench.RulesConfig
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Rule runners (1, 2, 4) vs a raw consume→publish→ack loop of the same work, fsync periodic and durable",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case cfg.Events < 100:
				return usageError{fmt.Errorf("--events must be at least 100")}
			case cfg.InFlight < 1:
				return usageError{fmt.Errorf("--in-flight must be at least 1")}
			case cfg.Turns < 1:
				return usageError{fmt.Errorf("--turns must be at least 1")}
			case cfg.Batch < -1 || cfg.Batch > events.MaxBatchCommands:
				return usageError{fmt.Errorf("--batch must be -1 to %d", events.MaxBatchCommands)}
			}
			for _, n := range cfg.Runners {
				if n < 1 {
					return usageError{fmt.Errorf("--runners: %d is not a runner count", n)}
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "storeloop bench rules: %d events per loop, %d in flight, %s/%s, %d CPUs, data in the OS temp dir\n\n", cfg.Events, cfg.InFlight, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
			_, err := bench.Rules(cmd.Context(), out, cfg)
			return err
		},
	}
	cmd.Flags().IntVar(&cfg.Events, "events", 20000, "events per loop")
	cmd.Flags().IntVar(&cfg.InFlight, "in-flight", 32, "events in flight: each runner's concurrency, the raw loop's workers")
	cmd.Flags().IntSliceVar(&cfg.Runners, "runners", nil, "rule runner counts to measure, in-process, one connection each (default 1,2,4)")
	cmd.Flags().IntVar(&cfg.Turns, "turns", 200, "idle cycles timed for the latency columns")
	cmd.Flags().IntVar(&cfg.Batch, "batch", 0, "rule writes per store.batch in each runner (0: the rule node's default; -1: one request each)")
	cmd.Flags().StringVar(&cfg.Rulenode, "rulenode", "", "path of a rulenode binary: measure the runner counts as rulenode processes too")
	cmd.Flags().StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of each runner measurement to PREFIX.<durability>.runners<k>.pprof")
	return cmd
}
