package storenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/metric"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/streamread"
	"github.com/storeloop/storeloop/internal/wirejson"
	"github.com/storeloop/storeloop/projections"
	"github.com/storeloop/storeloop/tracing"
)

// Node is a running store node.
type Node struct {
	cfg     config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	acks    *acks // the PubAcks of the loop's appends, read by the acker
	svc     micro.Service
	now     func() time.Time
	queue   chan *pending
	flights chan *flight  // staged batches, loop → acker
	acked   chan *flight  // acknowledged batches, acker → committer
	wake    chan struct{} // acker or committer → loop: a batch failed, recover
	done    chan struct{}
	stopMu  sync.Mutex
	closed  bool

	// Owned by the loop goroutine (and by Start before the loop runs).
	state   *projections.State
	schemas map[string]*schema
	dedupe  *dedupeTable

	metrics *tracing.Metrics

	inFlight atomic.Int64
	lastSeq  atomic.Uint64
	healthMu sync.Mutex
	halted   string // why writes are refused; "" while healthy

	loss          *lossGuard   // the high-water mark and the data loss accepted
	replyFailures atomic.Int64 // replies the connection refused to send

	failMu     sync.Mutex
	failErr    error     // a batch failed to commit; the loop must rebuild
	unresolved []*flight // caught in the failure, answered after the rebuild

	// Integrity and recovery (integrity.go, recover.go).
	signer             *proof.Signer // nil only with proofs off (benchmarks)
	verifier           *proof.Verifier
	proofSince         uint64      // messages before it predate proofs
	prev               proof.Hash  // owned by the loop: the leaf of the last message staged
	resolveFrom        uint64      // owned by the loop: replay records accepted messages after it
	replayed           *admission  // owned by the loop: what the last replay found
	stale              atomic.Bool // the state is being rebuilt: every command is refused
	retry              *time.Timer // the next rebuild attempt after a failed one
	retryAt            time.Time   // owned by the loop
	expiry             *time.Timer // the next TTL expiry (expiry.go)
	expiryAt           time.Time   // owned by the loop: what expiry is set for
	expiryTails        []uint64    // owned by the loop: the last sequence of each expiry group maybe in flight
	rebuildFailures    int         // owned by the loop, reported under healthMu
	healthMetrics      metric.Registration
	rebuildFailing     int    // under healthMu: rebuildFailures, for metrics
	quarantined        int    // under healthMu: messages the last replay quarantined
	lastQuarantinedSeq uint64 // under healthMu

	lead leadership  // leader or standby among nodes on the stream (standby.go)
	snap snapshotter // snapshot_take.go

	listing atomic.Bool // a store.snapshots listing is running (snapshot_list.go)
}

// Start binds (or creates) the event stream on nc's JetStream, rebuilds the
// state by replaying it, and serves commands until Stop.
func Start(ctx context.Context, nc *nats.Conn, opts ...Option) (*Node, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.clock == nil {
		cfg.clock = time.Now
	}
	if cfg.syncer == nil && cfg.syncStoreDir != "" {
		cfg.syncer = accountSyncer(cfg.syncStoreDir, cfg.syncAccount, cfg.stream)
	}
	// Pending acks: up to 10k expiry deletes (expiry.go) beside the
	// commands' flights.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return nil, fmt.Errorf("storenode: jetstream: %w", err)
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.logger.With("component", "storenode"),
		nc:      nc,
		js:      js,
		now:     cfg.clock,
		queue:   make(chan *pending, 8192),
		flights: make(chan *flight, 16),
		acked:   make(chan *flight, 64),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		retry:   time.NewTimer(time.Hour),
		expiry:  time.NewTimer(time.Hour),
		snap:    snapshotter{captures: make(chan captureStep)},

		resolveFrom: math.MaxUint64,
	}
	n.retry.Stop()
	n.expiry.Stop()
	if n.metrics, err = tracing.NewMetrics(nil); err != nil {
		return nil, fmt.Errorf("storenode: metrics: %w", err)
	}
	if n.loss, err = newLossGuard(cfg); err != nil {
		return nil, err
	}
	if err := n.initProof(); err != nil {
		return nil, err
	}
	// Every step until the node serves waits for a cluster in an
	// election, up to the start timeout (startup.go).
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.startTimeout, errStartTimeout)
	defer cancel()
	for _, s := range []struct {
		what string
		step func(context.Context) error
	}{
		{"stream " + cfg.stream, n.checkStreamExists},
		{"stream " + cfg.stream, n.ensureStream},
		{"rule buckets", n.ensureRuleBuckets},
		{"dead-letter stream " + cfg.deadLetters, n.ensureDeadLetterStream},
	} {
		if err := n.startStep(ctx, s.what, false, s.step); err != nil {
			return nil, err
		}
	}
	started := time.Now()
	if err := n.startStep(ctx, "replay of stream "+cfg.stream, true, n.rebuild); err != nil {
		return nil, err
	}
	n.log.Info("state rebuilt from stream", "stream", cfg.stream, "lastSeq", n.state.LastSeq,
		"buckets", len(n.state.Buckets()), "took", time.Since(started))
	if n.healthMetrics, err = n.metrics.ObserveStore(n.health); err != nil {
		return nil, fmt.Errorf("storenode: metrics: %w", err)
	}
	if n.acks, err = subscribeAcks(nc); err != nil {
		n.healthMetrics.Unregister()
		return nil, err
	}
	go n.acker()
	go n.committer()
	if err := n.startLeadership(ctx); err != nil {
		n.stopLeadership(ctx)
		n.stopService()
		close(n.flights) // ends the acker and the committer
		n.healthMetrics.Unregister()
		return nil, err
	}
	go n.loop()
	if cfg.dataDir != "" {
		go n.keepMark()
	}
	if cfg.snapshots.periodic() {
		go n.keepSnapshots()
	}
	// Subscriptions reach the server asynchronously: flush so that a
	// request sent once Start returns finds the service.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		n.Stop(ctx)
		return nil, fmt.Errorf("storenode: flush subscriptions: %w", err)
	}
	return n, nil
}

// Stop stops serving: no new commands are taken, the ones taken are
// committed and answered, then the loop ends.
func (n *Node) Stop(ctx context.Context) error {
	n.stopMu.Lock()
	if n.closed {
		n.stopMu.Unlock()
		<-n.done
		return nil
	}
	n.closed = true
	n.stopMu.Unlock()
	n.stopService()
	close(n.queue)
	select {
	case <-n.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	n.stopLeadership(ctx)
	if c, ok := n.cfg.syncer.(io.Closer); ok {
		c.Close()
	}
	n.writeMark()
	n.healthMetrics.Unregister()
	n.log.Info("store node stopped", "lastSeq", n.lastSeq.Load())
	return nil
}

// Status reports progress and health; safe from any goroutine.
func (n *Node) Status() events.StatusResult {
	lost := n.loss.lost()
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	return events.StatusResult{LastSeq: n.lastSeq.Load(), InFlight: int(n.inFlight.Load()),
		Healthy: n.halted == "", Reason: n.halted, LostEvents: lostCount(lost), LostRanges: lost,
		Quarantined: n.quarantined, LastQuarantinedSeq: n.lastQuarantinedSeq}
}

// Ready reports whether the node accepts writes: nil, or why not. The
// text says what a ready node has to report (the /readyz body): the
// messages it quarantined and the events it accepted as lost.
func (n *Node) Ready() (text string, err error) {
	st := n.Status()
	if !st.Healthy {
		return "", errors.New(st.Reason)
	}
	if l := n.lead.lease; l != nil {
		if !n.lead.leading.Load() {
			return fmt.Sprintf("standby: following stream %s at seq %d, %d events behind", n.cfg.stream, st.LastSeq, n.lead.lag.Load()), nil
		}
		epoch, _ := l.state()
		text = fmt.Sprintf("ready: leader of stream %s (epoch %d)", n.cfg.stream, epoch)
	} else {
		text = "ready"
	}
	if st.Quarantined > 0 {
		text += fmt.Sprintf("; %d messages in the stream quarantined (not this store's events; last at seq %d)", st.Quarantined, st.LastQuarantinedSeq)
	}
	if st.LostEvents > 0 {
		text += fmt.Sprintf("; %d events lost and accepted (--accept-data-loss)", st.LostEvents)
	}
	return text, nil
}

// ensureStream creates the event stream, or updates an existing one with
// the node's key added to the trusted keys. The update reads and writes
// the whole metadata, so it runs under the trust lock: two nodes starting
// at once must not each drop the other's key.
func (n *Node) ensureStream(ctx context.Context) error {
	for {
		_, err := n.js.Stream(ctx, n.cfg.stream)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			err = n.writeStream(ctx, n.js.CreateStream)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another node created it first: add the key to its list
			}
			return err
		case err != nil:
			return fmt.Errorf("storenode: stream %s: %w", n.cfg.stream, err)
		}
		return n.withTrustLock(ctx, func() error { return n.writeStream(ctx, n.js.UpdateStream) })
	}
}

// writeStream creates or updates (write) the event stream with the
// node's configuration and metadata, and trusts the keys it then lists.
func (n *Node) writeStream(ctx context.Context, write func(context.Context, jetstream.StreamConfig) (jetstream.Stream, error)) error {
	metadata, err := n.streamMetadata(ctx)
	if err != nil {
		return err
	}
	s, err := write(ctx, jetstream.StreamConfig{
		Name:               n.cfg.stream,
		Description:        "storeloop events: one message per bucket mutation",
		Subjects:           []string{events.EventSubjectPrefix + ".>", events.SchemaSubjectPrefix + ".>", events.LeaderSubject},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxMsgSize:         streamMaxMsgBytes,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowAtomicPublish: true,
		Duplicates:         time.Minute,
		Replicas:           n.cfg.replicas,
		Metadata:           metadata,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return err
	}
	if err != nil {
		return fmt.Errorf("storenode: stream %s: %w", n.cfg.stream, err)
	}
	return n.trust(s.CachedInfo().Config.Metadata)
}

// rebuild replaces the state with the fold of the stream, read on a
// connection of its own: the newest valid snapshot and the stream after
// it, or the whole stream; a sequence missing from it is data loss.
func (n *Node) rebuild(ctx context.Context) (err error) {
	src, err := n.openReplay(ctx)
	if err != nil {
		return err
	}
	defer src.close()
	defer func() {
		if cause := context.Cause(src.ctx); err != nil && cause != nil && ctx.Err() == nil {
			err = cause // the replay connection lost its server
		}
	}()
	ctx = src.ctx
	f := n.newFolder()
	snap := n.loadSnapshot(ctx, src, n.resolveFrom)
	if snap != nil {
		f.st, f.schemas, f.dd = snap.state, snap.schemas, snap.dedupe
		f.rr = newReplayReplies(f.dd, n.now())
		snap.seed(f.adm, f.seqs)
	}
	if err := streamread.Upto(ctx, src.stream, f.st.LastSeq+1, f.fold); err != nil {
		return err
	}
	if err := n.checkSeqs(f.seqs, src.last); err != nil {
		return err
	}
	st := f.st
	// After accepted loss at the tail the stream's last sequence is past
	// the last event: appends must expect the former.
	st.LastSeq = max(st.LastSeq, src.last)
	f.adm.done()
	n.state, n.schemas, n.dedupe = st, f.schemas, f.dd
	n.lastSeq.Store(st.LastSeq)
	if snap != nil {
		n.snap.seq.Store(snap.header.Seq)
		n.snap.at.Store(snap.header.Taken.UnixNano())
		n.log.Info("state loaded from snapshot, then the stream after it", "snapshot", snapshotName(snap.header.Seq), "tail", st.LastSeq-snap.header.Seq)
	}
	return nil
}

// haltReason is why writes are refused, "" while healthy: what the hot
// path needs of Status, without copying the lost ranges.
func (n *Node) haltReason() string {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	return n.halted
}

func (n *Node) setHalted(reason string) {
	n.healthMu.Lock()
	n.halted = reason
	n.healthMu.Unlock()
}

// asContractError returns err as an *events.Error, bad_request if it is not one.
func asContractError(err error) *events.Error {
	var e *events.Error
	if errors.As(err, &e) {
		return e
	}
	return events.Errorf(events.CodeBadRequest, "%v", err)
}

// marshalReply encodes the reply with result, or with e when e is not nil.
// A json.RawMessage result is the store's own (compact) encoding of a
// record and is copied as it is.
func marshalReply(result any, e *events.Error) []byte {
	if e == nil {
		b := append(make([]byte, 0, 64), `{"result":`...)
		var err error
		if raw, ok := result.(json.RawMessage); ok && len(raw) > 0 {
			b = append(b, raw...)
		} else if b, err = wirejson.Append(b, result); err != nil {
			e = events.Errorf(events.CodeInternal, "encode result: %v", err)
		}
		if e == nil {
			return append(b, '}')
		}
	}
	data, _ := json.Marshal(events.Reply{Error: e})
	return data
}
