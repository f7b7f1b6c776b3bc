// Command rulenode runs a storeloop rule set: it reads the store's events
// from the rule set's durable JetStream consumer, shared by every rulenode
// running a set of the same name, and writes back through the store node.
// SIGINT or SIGTERM stops fetching, finishes the events in hand and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/daemon"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/tracing"
)

func main() {
	ctx, cancel := daemon.SignalContext()
	err := run(ctx, os.Args[1:])
	cancel()
	// --help prints the usage and is not a failure.
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "rulenode:", err)
		os.Exit(1)
	}
}

type flags struct {
	daemon.Common
	conn                                         daemon.Conn
	rules, natsURL, name, stream, prefix, health string
	concurrency, maxDeliver, batch               int
	ackWait                                      time.Duration
	start                                        rulenode.StartPolicy
	// ruleset names a deployed rule set, run instead of the file rules.
	ruleset string
	// scoped sends commands on bucket-scoped subjects (auth --rules creds).
	scoped bool
	// dlqStream is the dead-letter stream the store node created.
	dlqStream string
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("rulenode", flag.ContinueOnError)
	fs.StringVar(&f.rules, "rules", daemon.Env("STORELOOP_RULES", ""), "YAML rule file (env STORELOOP_RULES)")
	fs.StringVar(&f.ruleset, "ruleset", daemon.Env("STORELOOP_DEPLOYED_RULESET", ""), "run the deployed rule set NAME (storeloop rules deploy), switching to each new version without a restart, instead of --rules (env STORELOOP_DEPLOYED_RULESET)")
	fs.StringVar(&f.natsURL, "nats", daemon.Env("STORELOOP_NATS", "nats://127.0.0.1:4222"), "NATS URL (env STORELOOP_NATS)")
	fs.StringVar(&f.name, "name", daemon.Env("STORELOOP_RULESET", ""), "rule-set name, overriding the file's: the durable consumer (env STORELOOP_RULESET)")
	fs.StringVar(&f.stream, "stream", daemon.Env("STORELOOP_STREAM", events.DefaultStream), "event stream name (env STORELOOP_STREAM)")
	fs.StringVar(&f.prefix, "prefix", daemon.Env("STORELOOP_PREFIX", events.DefaultCommandPrefix), "command subject prefix (env STORELOOP_PREFIX)")
	fs.StringVar(&f.dlqStream, "dlq-stream", daemon.Env("STORELOOP_DLQ_STREAM", events.DefaultDeadLetterStream), "dead-letter stream, as the store node's --dlq-stream (env STORELOOP_DLQ_STREAM)")
	fs.IntVar(&f.concurrency, "concurrency", rulenode.DefaultConcurrency, "events worked on at a time (env STORELOOP_CONCURRENCY)")
	fs.IntVar(&f.batch, "batch", rulenode.DefaultBatching, fmt.Sprintf("rule writes sent together in one store.batch, at most %d; 0: one request each (env STORELOOP_BATCH)", events.MaxBatchCommands))
	fs.IntVar(&f.maxDeliver, "max-deliver", rulenode.DefaultMaxDeliver, "deliveries of a failing event before it is dead-lettered (env STORELOOP_MAX_DELIVER)")
	fs.DurationVar(&f.ackWait, "ack-wait", rulenode.DefaultAckWait, "redeliver an event after this long without a verdict (env STORELOOP_ACK_WAIT)")
	fs.StringVar(&f.health, "health", daemon.Env("STORELOOP_HEALTH", ""), "serve /healthz, /readyz and /metrics on this address, e.g. 127.0.0.1:8223 (env STORELOOP_HEALTH)")
	fs.BoolVar(&f.scoped, "scoped-subjects", false, "send commands on bucket-scoped subjects store.<op>.<bucket>, as credentials of storeloop auth user --rules require (env STORELOOP_SCOPED_SUBJECTS)")
	start := fs.String("start", daemon.Env("STORELOOP_START", rulenode.StartAll.String()), "where a NEW rule set's consumer starts: all (the stream's history too) or new (only events appended from now); an existing consumer keeps its position (env STORELOOP_START)")
	f.Register(fs)
	f.conn.Register(fs, daemon.TrustCA)
	err := daemon.SetFromEnv(fs, map[string]string{
		"concurrency": "STORELOOP_CONCURRENCY", "max-deliver": "STORELOOP_MAX_DELIVER", "ack-wait": "STORELOOP_ACK_WAIT",
		"scoped-subjects": "STORELOOP_SCOPED_SUBJECTS", "batch": "STORELOOP_BATCH"})
	if err != nil {
		return nil, err
	}
	if err = fs.Parse(args); err != nil {
		return nil, err
	}
	if f.start, err = rulenode.ParseStartPolicy(*start); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	case f.rules == "" && f.ruleset == "":
		return nil, fmt.Errorf("--rules FILE or --ruleset NAME is required")
	case f.batch < 0 || f.batch > events.MaxBatchCommands:
		return nil, fmt.Errorf("--batch %d: want 0 to %d", f.batch, events.MaxBatchCommands)
	case f.rules != "" && f.ruleset != "":
		return nil, fmt.Errorf("--rules and --ruleset exclude each other")
	case !events.ValidBucketName(f.dlqStream):
		return nil, fmt.Errorf("--dlq-stream %q: want a stream name of letters, digits, '_' and '-'", f.dlqStream)
	case f.ruleset != "" && (f.name != "" || f.start != rulenode.StartAll):
		return nil, fmt.Errorf("--name and --start apply to --rules only: a deployed rule set is named by --ruleset and starts at its first version's sequence")
	}
	if err := f.conn.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

func run(ctx context.Context, args []string) error {
	f, err := parseFlags(args)
	if err != nil {
		return err
	}
	daemon.TuneGC()
	log, shutdownTelemetry, err := f.Start(ctx, "rulenode")
	if err != nil {
		return err
	}
	defer shutdownTelemetry(context.Background())
	var set *rulenode.RuleSet
	name := f.ruleset
	if f.rules != "" {
		if set, err = loadRules(f, log); err != nil {
			return err
		}
		name = set.Name
	}

	metrics, err := tracing.NewMetrics(nil)
	if err != nil {
		return err
	}

	connOpts, err := f.conn.NATSOptions()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(f.natsURL, append(connOpts, nats.Name("rulenode "+name), nats.MaxReconnects(-1))...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", f.natsURL, err)
	}
	defer nc.Close()
	clOpts := []client.Option{client.WithCommandPrefix(f.prefix), client.WithStream(f.stream), client.WithLogger(log)}
	if f.scoped {
		clOpts = append(clOpts, client.WithScopedSubjects())
	}
	cl, err := client.New(nc, clOpts...)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	opts := []rulenode.RunnerOption{
		rulenode.WithStream(f.stream),
		rulenode.WithDeadLetterStream(f.dlqStream),
		rulenode.WithConcurrency(f.concurrency),
		rulenode.WithBatching(f.batch),
		rulenode.WithMaxDeliver(f.maxDeliver),
		rulenode.WithAckWait(f.ackWait),
		rulenode.WithStartFrom(f.start),
		rulenode.WithLogger(log),
		rulenode.WithMetrics(metrics)}
	var runner *rulenode.Runner
	if set != nil {
		runner = rulenode.NewRunner(js, cl, set, opts...)
	} else {
		if runner, err = rulenode.NewDeployedRunner(ctx, js, cl, f.ruleset, opts...); err != nil {
			return err
		}
		set = runner.RuleSet()
	}

	reg, err := metrics.ObservePending(set.Name, func(ctx context.Context) (int64, error) {
		cons, err := js.Consumer(ctx, f.stream, set.Name)
		if err != nil {
			return 0, err
		}
		return int64(cons.CachedInfo().NumPending), nil
	})
	if err != nil {
		return err
	}
	defer reg.Unregister()
	if f.health != "" {
		addr, stopHTTP, err := daemon.HTTP(f.health, func() (string, error) { return "ready", runner.Ready() }, tracing.MetricsHandler(), log)
		if err != nil {
			return err
		}
		defer stopHTTP(context.Background())
		log.Info("http endpoints", "addr", addr)
	}

	log.Info("rule node starting", "ruleSet", set.Name, "rules", len(set.Rules), "file", f.rules, "deployed", f.ruleset != "",
		"nats", f.natsURL, "stream", f.stream, "concurrency", f.concurrency, "start", f.start)
	if err := runner.Run(ctx); err != nil {
		return err
	}
	log.Info("rule node stopped", "ruleSet", set.Name)
	if err := nc.Drain(); err != nil {
		log.Warn("drain", "err", err)
	}
	return nil
}

// loadRules loads --rules, renamed by --name, warning of loops.
func loadRules(f *flags, log *slog.Logger) (*rulenode.RuleSet, error) {
	set, err := rulenode.LoadFile(f.rules)
	if err != nil {
		return nil, err
	}
	if f.name != "" {
		set.Name = f.name
	}
	for _, c := range rulenode.Lint(set) {
		if !c.Guarded() {
			log.Warn("rules form a loop; maxHop will cut it", "cycle", c.String(), "maxHop", set.MaxHop)
		}
	}
	return set, nil
}
