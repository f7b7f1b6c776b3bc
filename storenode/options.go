package storenode

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
)

// Option configures a Node.
type Option func(*config) error

type config struct {
	prefix         string
	stream         string
	deadLetters    string // the dead-letter stream the node creates for rule nodes
	logger         *slog.Logger
	syncer         Syncer
	syncStoreDir   string
	syncAccount    string // JetStream account of syncStoreDir
	maxBatch       int
	maxRecordBytes int
	dedupeWindow   time.Duration
	dedupeSize     int
	appendTimeout  time.Duration
	replicas       int    // 0: the server's default, one copy
	dataDir        string // where the high-water mark is kept; "" for none
	acceptDataLoss bool
	maxScan        int
	dedupeBytes    int
	proofKey       nkeys.KeyPair
	proofOff       bool // benchmarks only: measure what proofs cost
	clock          func() time.Time
	lease          time.Duration // 0: the only node, no lease (see WithLease)
	snapshots      snapshotConfig
	startTimeout   time.Duration // how long Start waits for the cluster (startup.go)
}

func defaultConfig() config {
	return config{
		prefix:         events.DefaultCommandPrefix,
		stream:         events.DefaultStream,
		deadLetters:    events.DefaultDeadLetterStream,
		logger:         slog.Default(),
		maxBatch:       256,
		maxRecordBytes: 256 << 10,
		dedupeWindow:   24 * time.Hour,
		dedupeSize:     1 << 20,
		appendTimeout:  appendTimeout,
		syncAccount:    "$G",
		maxScan:        DefaultMaxScan,
		dedupeBytes:    DefaultDedupeBytes,
		startTimeout:   DefaultStartTimeout,
	}
}

// CheckOptions reports the first invalid option, so that a daemon can refuse
// bad flags before it starts anything.
func CheckOptions(opts ...Option) error {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return err
		}
	}
	return nil
}

// WithCommandPrefix sets the first token of command subjects (default "store").
func WithCommandPrefix(prefix string) Option {
	return func(c *config) error {
		if !events.ValidBucketName(prefix) {
			return fmt.Errorf("storenode: command prefix %q must be one subject token", prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithStream sets the JetStream stream name (default "STORELOOP").
func WithStream(name string) Option {
	return func(c *config) error {
		if !events.ValidBucketName(name) {
			return fmt.Errorf("storenode: stream name %q is not valid", name)
		}
		c.stream = name
		return nil
	}
}

// WithDeadLetterStream names the dead-letter stream the node creates, or
// corrects, at start (default "STORELOOP_DLQ"); rule nodes append to it.
func WithDeadLetterStream(name string) Option {
	return func(c *config) error {
		if !events.ValidBucketName(name) {
			return fmt.Errorf("storenode: dead-letter stream name %q is not valid", name)
		}
		c.deadLetters = name
		return nil
	}
}

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("storenode: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithSyncer makes the node call s once per group of batches the stream has
// acknowledged, before it replies to them: the group commit's fsync (see
// EmbeddedSyncer).
func WithSyncer(s Syncer) Option {
	return func(c *config) error { c.syncer = s; return nil }
}

// WithEmbeddedSync enables the group-commit fsync (EmbeddedSyncer) for the
// node's stream in an embedded server whose JetStream StoreDir is storeDir.
func WithEmbeddedSync(storeDir string) Option {
	return func(c *config) error { c.syncStoreDir = storeDir; return nil }
}

// withEmbeddedAccount names the JetStream account of WithEmbeddedSync's
// server when it enforces roles (default "$G", the server's without auth).
func withEmbeddedAccount(account string) Option {
	return func(c *config) error { c.syncAccount = account; return nil }
}

// WithMaxBatch caps the commands group-committed together (default 256).
// A store.batch counts as its commands and is never split: a group takes
// commands while it holds fewer than n, so it may pass n by one batch.
func WithMaxBatch(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 900 {
			return fmt.Errorf("storenode: max batch %d out of range 1..900", n)
		}
		c.maxBatch = n
		return nil
	}
}

// WithMaxRecordBytes caps the JSON size of one stored record (default 256 KiB).
func WithMaxRecordBytes(n int) Option {
	return func(c *config) error {
		if n < 64 || n > 4<<20 {
			return fmt.Errorf("storenode: max record bytes %d out of range 64..4MiB", n)
		}
		c.maxRecordBytes = n
		return nil
	}
}

// WithDedupe sets how long and how many command ids are remembered for
// idempotency (default 24h, 1Mi ids). Ids are rebuilt from the stream at
// start, within the same bounds.
func WithDedupe(window time.Duration, size int) Option {
	return func(c *config) error {
		if window <= 0 || size <= 0 {
			return fmt.Errorf("storenode: dedupe window and size must be positive")
		}
		c.dedupeWindow, c.dedupeSize = window, size
		return nil
	}
}

// WithReplicas sets the number of copies of the event stream kept by a
// clustered NATS server (default 1; an existing stream is updated to n).
// More than one needs a JetStream cluster of at least n servers.
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("storenode: replicas %d out of range 1..5", n)
		}
		c.replicas = n
		return nil
	}
}

// WithDataDir keeps the node's durable high-water mark in dir, so that a
// stream found shorter than what the node acknowledged, or gone, is
// reported as data loss at start. The caller holds dir's writer lock
// (StartEmbedded does).
func WithDataDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return fmt.Errorf("storenode: empty data directory")
		}
		c.dataDir = dir
		return nil
	}
}

// WithAcceptDataLoss makes a start that finds events missing from the
// stream log and count the loss, move the high-water mark and serve what
// is left, instead of failing with *DataLossError.
func WithAcceptDataLoss() Option {
	return func(c *config) error { c.acceptDataLoss = true; return nil }
}

// DefaultMaxScan is the default cap on the records one command visits.
const DefaultMaxScan = 100_000

// WithMaxScan caps the records one query, count, aggregate or transaction's
// queryReads may visit (default DefaultMaxScan); past it the command is
// refused with too_large before it runs. Every command runs on the single
// writer, so the cap bounds how long one command can hold up the others.
func WithMaxScan(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("storenode: max scan %d must be positive", n)
		}
		c.maxScan = n
		return nil
	}
}

// DefaultDedupeBytes is the default byte budget of the dedupe table.
const DefaultDedupeBytes = 32 << 20

// WithDedupeBytes bounds the memory the remembered replies of idempotent
// commands take (default DefaultDedupeBytes): past it the oldest are
// forgotten first, as past WithDedupe's window and count. Replay fills the
// table within the same budget as it reads the stream.
func WithDedupeBytes(n int) Option {
	return func(c *config) error {
		if n < 1<<20 {
			return fmt.Errorf("storenode: dedupe bytes %d must be at least 1 MiB", n)
		}
		c.dedupeBytes = n
		return nil
	}
}

// WithProofKey sets the key (an nkey seed, ed25519) the node signs its
// events with; its public key is added to the stream's trusted keys. The
// daemon keeps it in <data>/proof.nk. Without it the node signs with a key
// of its run only.
func WithProofKey(kp nkeys.KeyPair) Option {
	return func(c *config) error {
		if kp == nil {
			return fmt.Errorf("storenode: nil proof key")
		}
		if _, err := kp.Seed(); err != nil {
			return fmt.Errorf("storenode: proof key without a seed: %w", err)
		}
		c.proofKey = kp
		return nil
	}
}
