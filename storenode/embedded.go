package storenode

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// FsyncMode chooses when appended events reach the disk.
type FsyncMode string

const (
	// FsyncBatch: the node fsyncs the stream's files once per group of
	// batches the stream has acknowledged, before replying. Every acknowledged write is on disk. Default.
	FsyncBatch FsyncMode = "batch"
	// FsyncAlways: NATS's sync_interval "always": the server fsyncs after
	// every message. Durable, slower (one fsync per event).
	FsyncAlways FsyncMode = "always"
	// FsyncPeriodic: NATS's periodic sync (every SyncInterval, 2 minutes by
	// default). An acknowledged write survives a process kill (it is in the
	// OS page cache) but not a power loss within the interval.
	FsyncPeriodic FsyncMode = "periodic"
)

// ParseFsyncMode validates a mode name.
func ParseFsyncMode(s string) (FsyncMode, error) {
	switch m := FsyncMode(s); m {
	case FsyncBatch, FsyncAlways, FsyncPeriodic:
		return m, nil
	}
	return "", fmt.Errorf("fsync mode %q: want batch, always or periodic", s)
}

// embeddedLocks maps a data directory to the lock of this process's
// embedded server on it, so that a restart within the process (tests,
// examples) waits for a stopped server's release instead of racing it.
var embeddedLocks sync.Map // absolute path → *embeddedLock

type embeddedLock struct {
	srv      *server.Server
	released chan struct{}
}

// EmbeddedConfig configures the NATS server a store node embeds.
type EmbeddedConfig struct {
	DataDir string    // JetStream file storage directory
	Listen  string    // host:port for clients; port 0 or -1 picks a free one
	Fsync   FsyncMode // default FsyncBatch
	Logs    bool      // let the server log to stderr

	// Auth, when set, is the server configuration enforcing the roles
	// (auth.LoadServer(dir).Options): listen, JetStream and TLS are set on
	// it. AuthAccount is its application account, which JetStream stores
	// the streams under. Without Auth every client may do anything, so the
	// server listens on loopback only unless Insecure.
	Auth        *server.Options
	AuthAccount string
	Insecure    bool

	// TLSCert and TLSKey make the server require TLS; TLSCA then also
	// requires client certificates signed by it (mutual TLS).
	TLSCert, TLSKey, TLSCA string
}

// StartEmbedded locks the data directory for this process (a second store
// node on it fails with *DataDirInUseError naming the holder), starts a
// JetStream-enabled NATS server for a store node and returns it with the
// options the node needs: the high-water mark in the data directory and
// the chosen fsync mode. The lock is released when the server shuts down.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, []Option, error) {
	if cfg.Fsync == "" {
		cfg.Fsync = FsyncBatch
	}
	opts, err := embeddedOptions(cfg)
	if err != nil {
		return nil, nil, err
	}
	// One writer per data directory: the lock comes before the server
	// opens anything in it, and lives as long as the server.
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("storenode: data directory: %w", err)
	}
	if prev, ok := embeddedLocks.Load(dir); ok && !prev.(*embeddedLock).srv.Running() {
		<-prev.(*embeddedLock).released
	}
	release, err := LockDataDir(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("storenode: embedded server: %w", err)
	}
	if cfg.Logs {
		s.ConfigureLogger()
	}
	s.Start()
	held := &embeddedLock{srv: s, released: make(chan struct{})}
	embeddedLocks.Store(dir, held)
	go func() {
		s.WaitForShutdown()
		release()
		embeddedLocks.CompareAndDelete(dir, held)
		close(held.released)
	}()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, nil, fmt.Errorf("storenode: embedded server not ready after 30s")
	}
	nodeOpts := []Option{WithDataDir(cfg.DataDir)}
	if cfg.Fsync == FsyncBatch {
		nodeOpts = append(nodeOpts, WithEmbeddedSync(cfg.DataDir))
		if cfg.Auth != nil {
			nodeOpts = append(nodeOpts, withEmbeddedAccount(cfg.AuthAccount))
		}
	}
	return s, nodeOpts, nil
}

// embeddedOptions are the server options cfg describes.
func embeddedOptions(cfg EmbeddedConfig) (*server.Options, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("storenode: embedded server needs a data directory")
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("storenode: listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("storenode: listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = -1
	}
	if cfg.Auth == nil && !cfg.Insecure && !loopback(host) {
		return nil, fmt.Errorf("storenode: refusing to listen on %s without --auth: any client reaching it could forge or delete events; use --auth DIR (storeloop auth init DIR), a loopback address, or --insecure", cfg.Listen)
	}
	opts := &server.Options{}
	if cfg.Auth != nil {
		opts = cfg.Auth.Clone()
	}
	opts.ServerName = "storeloop"
	opts.Host, opts.Port = host, port
	opts.JetStream, opts.StoreDir, opts.SyncAlways = true, cfg.DataDir, cfg.Fsync == FsyncAlways
	opts.NoSigs, opts.NoLog = true, !cfg.Logs
	opts.MaxPayload = 8 << 20
	if err := embeddedTLS(opts, cfg); err != nil {
		return nil, err
	}
	return opts, nil
}

// ReloadEmbedded applies cfg to a server StartEmbedded started with the
// same cfg but for its Auth: the roles of an auth directory written again
// (a user revoked by auth user --force) take effect without a restart;
// connections of revoked users are closed.
func ReloadEmbedded(s *server.Server, cfg EmbeddedConfig) error {
	if cfg.Fsync == "" {
		cfg.Fsync = FsyncBatch
	}
	opts, err := embeddedOptions(cfg)
	if err != nil {
		return err
	}
	if err := s.ReloadOptions(opts); err != nil {
		return fmt.Errorf("storenode: reload embedded server: %w", err)
	}
	return nil
}

// loopback reports whether host only accepts connections from this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// embeddedTLS sets the server's TLS from cfg's files.
func embeddedTLS(opts *server.Options, cfg EmbeddedConfig) error {
	switch {
	case cfg.TLSCert == "" && cfg.TLSKey == "" && cfg.TLSCA == "":
		return nil
	case cfg.TLSCert == "" || cfg.TLSKey == "":
		return fmt.Errorf("storenode: TLS needs both --tls-cert and --tls-key")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CaFile: cfg.TLSCA, Verify: cfg.TLSCA != ""})
	if err != nil {
		return fmt.Errorf("storenode: TLS: %w", err)
	}
	opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, cfg.TLSCA != ""
	opts.TLSTimeout = 5 // seconds: handshakes on a busy machine
	return nil
}
