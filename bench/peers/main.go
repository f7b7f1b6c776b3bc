// Command peers runs `storeloop bench rules` with Watermill's router as a
// peer: the same loyalty work (consume an order's "shipped" event, evaluate
// the rule, write one loyalty record, ack) through storeloop's rule
// runners, a raw nats.go loop and Watermill, in one run on one embedded
// server, printing one table. It is a module of its own so that the main
// module does not depend on Watermill.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/internal/daemon"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	cfg := bench.RulesConfig{Peers: []bench.Loop{watermillLoop}}
	fs.IntVar(&cfg.Events, "events", 20000, "events per loop (env PEERS_EVENTS)")
	fs.IntVar(&cfg.InFlight, "in-flight", 32, "events in flight: each runner's concurrency, the raw loop's workers, Watermill's subscribers (env PEERS_IN_FLIGHT)")
	fs.IntVar(&cfg.Turns, "turns", 200, "idle cycles timed for the latency columns (env PEERS_TURNS)")
	fs.IntVar(&cfg.Batch, "batch", 0, "rule writes per store.batch in each runner (0: the rule node's default; -1: one request each) (env PEERS_BATCH)")
	fs.StringVar(&cfg.Rulenode, "rulenode", "", "path of a rulenode binary: measure the runner counts as rulenode processes too (env PEERS_RULENODE)")
	runners := fs.String("runners", "1,2,4", "rule runner counts, comma-separated (env PEERS_RUNNERS)")
	if err := daemon.SetFromEnv(fs, map[string]string{
		"events": "PEERS_EVENTS", "in-flight": "PEERS_IN_FLIGHT", "turns": "PEERS_TURNS", "runners": "PEERS_RUNNERS", "rulenode": "PEERS_RULENODE", "batch": "PEERS_BATCH",
	}); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	for f := range strings.SplitSeq(*runners, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--runners: %q is not a runner count", f)
		}
		cfg.Runners = append(cfg.Runners, n)
	}
	switch {
	case cfg.Events < 100:
		return fmt.Errorf("--events must be at least 100")
	case cfg.InFlight < 1:
		return fmt.Errorf("--in-flight must be at least 1")
	case cfg.Turns < 1:
		return fmt.Errorf("--turns must be at least 1")
	}
	ctx, stop := daemon.SignalContext()
	defer stop()
	fmt.Printf("storeloop bench rules with peers: %d events per loop, %d in flight, %s/%s, %d CPUs, data in the OS temp dir\n\n", cfg.Events, cfg.InFlight, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	_, err := bench.Rules(ctx, os.Stdout, cfg)
	return err
}
