// Command storenode runs a storeloop store node: by default with an embedded
// NATS server (JetStream file storage under --data, clients on --listen),
// or against an external NATS server with --nats.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/daemon"
	"github.com/storeloop/storeloop/storenode"
	"github.com/storeloop/storeloop/tracing"
)

func main() {
	// --help prints the usage and is not a failure.
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "storenode:", err)
		os.Exit(1)
	}
}

type flags struct {
	daemon.Common
	conn                                               daemon.Conn
	data, listen, natsURL, fsync, prefix, stream, http string
	authDir, tlsCert, tlsKey, proofKey                 string
	serverLogs, insecure, acceptDataLoss, dataSet      bool
	replicas                                           int
	maxScan, dedupeBytes                               int // the store node's cost and memory caps
	lease                                              time.Duration
	snapshotEvery                                      uint64
	snapshotInterval                                   time.Duration
	snapshotKeep                                       int
	snapshotMaxBytes                                   int64
	dlqStream                                          string
	startTimeout                                       time.Duration
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("storenode", flag.ContinueOnError)
	fs.StringVar(&f.data, "data", daemon.Env("STORELOOP_DATA", "./storeloop-data"), "JetStream data directory of the embedded NATS server; with --nats, only if given: where the node keeps its lock and high-water mark (env STORELOOP_DATA)")
	fs.StringVar(&f.listen, "listen", daemon.Env("STORELOOP_LISTEN", "127.0.0.1:4222"), "client address of the embedded NATS server (env STORELOOP_LISTEN)")
	fs.StringVar(&f.natsURL, "nats", daemon.Env("STORELOOP_NATS", ""), "use this external NATS server instead of an embedded one (env STORELOOP_NATS)")
	fs.StringVar(&f.fsync, "fsync", daemon.Env("STORELOOP_FSYNC", string(storenode.FsyncBatch)), "embedded durability: batch (fsync per group commit), always (NATS fsyncs every message) or periodic (env STORELOOP_FSYNC)")
	fs.StringVar(&f.prefix, "prefix", daemon.Env("STORELOOP_PREFIX", events.DefaultCommandPrefix), "command subject prefix (env STORELOOP_PREFIX)")
	fs.StringVar(&f.stream, "stream", daemon.Env("STORELOOP_STREAM", events.DefaultStream), "event stream name (env STORELOOP_STREAM)")
	fs.StringVar(&f.http, "http", daemon.Env("STORELOOP_HTTP", ""), "serve /healthz, /readyz and /metrics on this address, e.g. 127.0.0.1:8222 (env STORELOOP_HTTP)")
	fs.StringVar(&f.proofKey, "proof-key", daemon.Env("STORELOOP_PROOF_KEY", ""), "nkey seed file the store signs its events with, created (mode 0600) when missing; default <data>/proof.nk (env STORELOOP_PROOF_KEY)")
	fs.StringVar(&f.dlqStream, "dlq-stream", daemon.Env("STORELOOP_DLQ_STREAM", events.DefaultDeadLetterStream), "dead-letter stream the node creates for rule nodes; give rulenode the same (env STORELOOP_DLQ_STREAM)")
	fs.IntVar(&f.replicas, "replicas", 1, "copies of the event stream in a JetStream cluster (with --nats; 1 for the embedded server) (env STORELOOP_REPLICAS)")
	f.Register(fs)
	fs.BoolVar(&f.serverLogs, "server-logs", false, "show the embedded NATS server's own logs (env STORELOOP_SERVER_LOGS)")
	fs.StringVar(&f.authDir, "auth", daemon.Env("STORELOOP_AUTH", ""), "enforce the roles of this directory (storeloop auth init DIR) on the embedded server, and connect with DIR/store.creds (env STORELOOP_AUTH)")
	fs.BoolVar(&f.insecure, "insecure", false, "let the embedded server listen on a non-loopback address without --auth: anyone reaching it can do anything (env STORELOOP_INSECURE)")
	fs.StringVar(&f.tlsCert, "tls-cert", daemon.Env("STORELOOP_TLS_CERT", ""), "embedded server: require TLS with this PEM certificate (env STORELOOP_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", daemon.Env("STORELOOP_TLS_KEY", ""), "private key of --tls-cert (env STORELOOP_TLS_KEY)")
	f.conn.Register(fs, "PEM CA file: the embedded server requires client certificates signed by it (mutual TLS); with --nats, the CA to trust the server with")
	fs.BoolVar(&f.acceptDataLoss, "accept-data-loss", false, "start even if acknowledged events are missing from the stream: log and count the loss, serve what is left (env STORELOOP_ACCEPT_DATA_LOSS)")
	fs.IntVar(&f.maxScan, "max-scan", storenode.DefaultMaxScan, "refuse (too_large) a command that would visit more records than this (env STORELOOP_MAX_SCAN)")
	fs.IntVar(&f.dedupeBytes, "dedupe-bytes", storenode.DefaultDedupeBytes, "memory for the remembered replies of idempotent commands, in bytes; the oldest go first (env STORELOOP_DEDUPE_BYTES)")
	fs.DurationVar(&f.lease, "lease", storenode.DefaultLease, "with --nats: lead the stream only while holding a lease this long, else follow it as a hot standby; 0: no lease, this node is the stream's only writer (env STORELOOP_LEASE)")
	fs.Uint64Var(&f.snapshotEvery, "snapshot-every", 100_000, "take a snapshot of the state every this many events; 0: not by count (env STORELOOP_SNAPSHOT_EVERY)")
	fs.DurationVar(&f.snapshotInterval, "snapshot-interval", 10*time.Minute, "take a snapshot this long after the last one if anything was written; 0: not by time (env STORELOOP_SNAPSHOT_INTERVAL)")
	fs.IntVar(&f.snapshotKeep, "snapshot-keep", storenode.DefaultSnapshotKeep, "snapshots kept, newest first (env STORELOOP_SNAPSHOT_KEEP)")
	fs.Int64Var(&f.snapshotMaxBytes, "snapshot-max-bytes", storenode.DefaultSnapshotMaxBytes, "largest snapshot object read or written, in bytes: a bigger one is skipped unread (env STORELOOP_SNAPSHOT_MAX_BYTES)")
	fs.DurationVar(&f.startTimeout, "start-timeout", storenode.DefaultStartTimeout, "wait this long at start for a NATS cluster without a stream leader or quorum (an election, servers restarting) before failing (env STORELOOP_START_TIMEOUT)")
	err := daemon.SetFromEnv(fs, map[string]string{"replicas": "STORELOOP_REPLICAS", "start-timeout": "STORELOOP_START_TIMEOUT", "lease": "STORELOOP_LEASE", "server-logs": "STORELOOP_SERVER_LOGS",
		"insecure": "STORELOOP_INSECURE", "accept-data-loss": "STORELOOP_ACCEPT_DATA_LOSS",
		"max-scan": "STORELOOP_MAX_SCAN", "dedupe-bytes": "STORELOOP_DEDUPE_BYTES",
		"snapshot-every": "STORELOOP_SNAPSHOT_EVERY", "snapshot-interval": "STORELOOP_SNAPSHOT_INTERVAL", "snapshot-keep": "STORELOOP_SNAPSHOT_KEEP",
		"snapshot-max-bytes": "STORELOOP_SNAPSHOT_MAX_BYTES"})
	if err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(fl *flag.Flag) { f.dataSet = f.dataSet || fl.Name == "data" })
	f.dataSet = f.dataSet || os.Getenv("STORELOOP_DATA") != ""
	if err := storenode.CheckOptions(append(append(f.limits(), f.leadership()...), f.names()...)...); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	case f.replicas > 1 && f.natsURL == "":
		// The embedded server is a single node: it cannot hold copies.
		return nil, fmt.Errorf("--replicas %d needs --nats to a JetStream cluster", f.replicas)
	case f.natsURL != "" && (f.tlsCert != "" || f.tlsKey != ""):
		return nil, fmt.Errorf("--tls-cert and --tls-key configure the embedded server: give an external server its TLS in its own configuration")
	}
	if f.conn.Creds == "" && f.authDir != "" {
		f.conn.Creds = filepath.Join(f.authDir, auth.RoleStore.CredsFile())
	}
	if err := f.conn.Validate(); err != nil {
		return nil, err
	}
	switch {
	case f.natsURL != "" && !f.dataSet && f.proofKey == "":
		// The key must outlive the process: ./storeloop-data in a container
		// without a volume there would not.
		return nil, errors.New("--nats needs --data DIR (the node's lock, high-water mark and proof key) or --proof-key FILE: say where the proof key is kept")
	case f.natsURL == "" && f.conn.Cert != "":
		return nil, errors.New("--tls-client-cert and --tls-client-key are for an external server (--nats): the store node reaches its embedded server in process")
	}
	return f, nil
}

// embedded is the configuration of the embedded NATS server the flags
// describe, with the roles of --auth as its directory holds them now.
func (f *flags) embedded(mode storenode.FsyncMode) (storenode.EmbeddedConfig, error) {
	cfg := storenode.EmbeddedConfig{DataDir: f.data, Listen: f.listen, Fsync: mode, Logs: f.serverLogs,
		Insecure: f.insecure, TLSCert: f.tlsCert, TLSKey: f.tlsKey, TLSCA: f.conn.CA}
	if f.authDir != "" {
		as, err := auth.LoadServer(f.authDir)
		if err != nil {
			return cfg, err
		}
		cfg.Auth, cfg.AuthAccount = as.Options, as.Account
	}
	return cfg, nil
}

// startEmbedded starts the embedded NATS server the flags describe.
func (f *flags) startEmbedded(mode storenode.FsyncMode) (*server.Server, []storenode.Option, error) {
	cfg, err := f.embedded(mode)
	if err != nil {
		return nil, nil, err
	}
	return storenode.StartEmbedded(cfg)
}

// leadership is the lease option: with --nats only (an embedded server's
// stream has one node, which holds its data directory).
func (f *flags) leadership() []storenode.Option {
	if f.natsURL == "" || f.lease == 0 {
		return nil
	}
	return []storenode.Option{storenode.WithLease(f.lease)}
}

// names are the options naming what the node creates besides its stream.
func (f *flags) names() []storenode.Option {
	return []storenode.Option{storenode.WithDeadLetterStream(f.dlqStream)}
}

// limits are the store node's options for its caps, snapshots and start.
func (f *flags) limits() []storenode.Option {
	return []storenode.Option{storenode.WithStartTimeout(f.startTimeout), storenode.WithMaxScan(f.maxScan), storenode.WithDedupeBytes(f.dedupeBytes),
		storenode.WithSnapshots(f.snapshotEvery, f.snapshotInterval), storenode.WithSnapshotKeep(f.snapshotKeep),
		storenode.WithSnapshotMaxBytes(f.snapshotMaxBytes)}
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
	if f.acceptDataLoss {
		opts = append(opts, storenode.WithAcceptDataLoss())
	}
	opts = append(opts, f.limits()...)
	opts = append(opts, f.leadership()...)
	opts = append(opts, f.names()...)
	url := f.natsURL
	var srv *server.Server
	if url == "" {
		var extra []storenode.Option
		srv, extra, err = f.startEmbedded(mode)
		if err != nil {
			return err
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		opts = append(opts, extra...)
		url = srv.ClientURL()
		if f.authDir != "" {
			go f.reloadOnHangup(ctx, srv, mode, log)
		}
		log.Info("embedded NATS server started", "url", url, "data", f.data, "fsync", mode,
			"auth", f.authDir != "", "tls", f.tlsCert != "", "mtls", f.tlsCert != "" && f.conn.CA != "")
	} else if f.dataSet {
		// The node's own files only: its lock and high-water mark.
		release, err := storenode.LockDataDir(f.data)
		if err != nil {
			return err
		}
		defer release()
		opts = append(opts, storenode.WithDataDir(f.data))
	}
	cc, connURL := f.conn.ConnConfig, url
	if srv != nil {
		// Its own server: in process, no TCP or TLS to cross (--tls-ca is
		// the client-certificate CA there); still authenticated as store.
		cc, connURL = auth.ConnConfig{Creds: cc.Creds}, ""
	}
	connOpts, err := cc.NATSOptions()
	if err != nil {
		return err
	}
	if srv != nil {
		connOpts = append(connOpts, nats.InProcessServer(srv))
	}
	// No reconnect buffer: an append published while reconnecting fails at
	// once rather than reaching the stream after the rebuild that resolved
	// it (a stray append the node would then quarantine).
	nc, err := nats.Connect(connURL, append(connOpts, nats.Name("storenode"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))...)
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
	log.Info("store node ready", "nats", url, "prefix", f.prefix, "stream", f.stream, "role", node.NodeStatus().Role)
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
