// Command storenode runs a storeloop store node: by default with an embedded
// NATS server (JetStream file storage under --data, clients on --listen),
// or against an external NATS server with --nats.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/daemon"
	"github.com/storeloop/storeloop/storenode"
	"github.com/storeloop/storeloop/tracing"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "storenode:", err)
		os.Exit(1)
	}
}

type flags struct {
	daemon.Common
	data, listen, natsURL, fsync, prefix, stream, http string
	proofKey                                           string
	serverLogs                                         bool
	replicas                                           int
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("storenode", flag.ContinueOnError)
	fs.StringVar(&f.data, "data", daemon.Env("STORELOOP_DATA", "./storeloop-data"), "JetStream data directory of the embedded NATS server (env STORELOOP_DATA)")
	fs.StringVar(&f.listen, "listen", daemon.Env("STORELOOP_LISTEN", "127.0.0.1:4222"), "client address of the embedded NATS server (env STORELOOP_LISTEN)")
	fs.StringVar(&f.natsURL, "nats", daemon.Env("STORELOOP_NATS", ""), "use this external NATS server instead of an embedded one (env STORELOOP_NATS)")
	fs.StringVar(&f.fsync, "fsync", daemon.Env("STORELOOP_FSYNC", string(storenode.FsyncBatch)), "embedded durability: batch (fsync per group commit), always (NATS fsyncs every message) or periodic (env STORELOOP_FSYNC)")
	fs.StringVar(&f.prefix, "prefix", daemon.Env("STORELOOP_PREFIX", events.DefaultCommandPrefix), "command subject prefix (env STORELOOP_PREFIX)")
	fs.StringVar(&f.stream, "stream", daemon.Env("STORELOOP_STREAM", events.DefaultStream), "event stream name (env STORELOOP_STREAM)")
	fs.StringVar(&f.http, "http", daemon.Env("STORELOOP_HTTP", ""), "serve /healthz, /readyz and /metrics on this address, e.g. 127.0.0.1:8222 (env STORELOOP_HTTP)")
	fs.StringVar(&f.proofKey, "proof-key", daemon.Env("STORELOOP_PROOF_KEY", ""), "nkey seed file the store signs its events with, created (mode 0600) when missing; default <data>/proof.nk (env STORELOOP_PROOF_KEY)")
	fs.IntVar(&f.replicas, "replicas", 1, "copies of the event stream in a JetStream cluster (with --nats; 1 for the embedded server) (env STORELOOP_REPLICAS)")
	f.Register(fs)
	fs.BoolVar(&f.serverLogs, "server-logs", false, "show the embedded NATS server's own logs (env STORELOOP_SERVER_LOGS)")
	if err := daemon.SetFromEnv(fs, map[string]string{"replicas": "STORELOOP_REPLICAS", "server-logs": "STORELOOP_SERVER_LOGS"}); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	case f.replicas > 1 && f.natsURL == "":
		// The embedded server is a single node: it cannot hold copies.
		return nil, fmt.Errorf("--replicas %d needs --nats to a JetStream cluster", f.replicas)
	}
	return f, nil
}

func run(args []string) error {
	f, err := parseFlags(args)
	if err != nil {
		return err
	}
	mode, err := storenode.ParseFsyncMode(f.fsync)
	if err != nil {
		return err
	}
	ctx, cancel := daemon.SignalContext()
	defer cancel()

	log, shutdownTelemetry, err := f.Start(ctx, "storenode")
	if err != nil {
		return err
	}
	defer shutdownTelemetry(context.Background())

	key, err := proof.LoadOrCreateKey(cmp.Or(f.proofKey, filepath.Join(f.data, "proof.nk")))
	if err != nil {
		return err
	}
	opts := []storenode.Option{storenode.WithLogger(log), storenode.WithCommandPrefix(f.prefix), storenode.WithStream(f.stream), storenode.WithReplicas(f.replicas),
		storenode.WithProofKey(key)}
	url := f.natsURL
	var srv *server.Server
	if url == "" {
		var extra []storenode.Option
		srv, extra, err = storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: f.data, Listen: f.listen, Fsync: mode, Logs: f.serverLogs})
		if err != nil {
			return err
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		opts = append(opts, extra...)
		url = srv.ClientURL()
		log.Info("embedded NATS server started", "url", url, "data", f.data, "fsync", mode)
	}
	nc, err := nats.Connect(url, nats.Name("storenode"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()

	node, err := storenode.Start(ctx, nc, opts...)
	if err != nil {
		return err
	}
	if f.http != "" {
		addr, stopHTTP, err := daemon.HTTP(f.http, node.Ready, tracing.MetricsHandler(), log)
		if err != nil {
			node.Stop(context.Background())
			return err
		}
		defer stopHTTP(context.Background())
		log.Info("http endpoints", "addr", addr)
	}
	log.Info("store node ready", "nats", url, "prefix", f.prefix, "stream", f.stream)
	// The line tests and launchers wait for.
	fmt.Fprintf(os.Stdout, "storenode ready nats=%s\n", url)

	<-ctx.Done()
	log.Info("shutting down")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	if err := node.Stop(stopCtx); err != nil {
		log.Warn("stop", "err", err)
	}
	if err := nc.Drain(); err != nil {
		log.Warn("drain", "err", err)
	}
	return nil
}
