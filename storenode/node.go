package storenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/storeloop/storeloop/events"
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

	failMu  sync.Mutex
	failErr error // a batch failed to commit; the loop must rebuild
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
	if cfg.syncer == nil && cfg.syncStoreDir != "" {
		cfg.syncer = accountSyncer(cfg.syncStoreDir, cfg.syncAccount, cfg.stream)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("storenode: jetstream: %w", err)
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.logger.With("component", "storenode"),
		nc:      nc,
		js:      js,
		now:     time.Now,
		queue:   make(chan *pending, 8192),
		flights: make(chan *flight, 16),
		acked:   make(chan *flight, 64),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if n.metrics, err = tracing.NewMetrics(nil); err != nil {
		return nil, fmt.Errorf("storenode: metrics: %w", err)
	}
	if n.loss, err = newLossGuard(cfg); err != nil {
		return nil, err
	}
	if err := n.checkStreamExists(ctx); err != nil {
		return nil, err
	}
	if err := n.ensureStream(ctx); err != nil {
		return nil, err
	}
	started := time.Now()
	if err := n.rebuild(ctx); err != nil {
		return nil, err
	}
	n.log.Info("state rebuilt from stream", "stream", cfg.stream, "lastSeq", n.state.LastSeq,
		"buckets", len(n.state.Buckets()), "took", time.Since(started))
	go n.loop()
	go n.acker()
	go n.committer()
	if cfg.dataDir != "" {
		go n.keepMark()
	}
	if err := n.serve(); err != nil {
		n.Stop(ctx)
		return nil, err
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
	var err error
	if n.svc != nil {
		err = n.svc.Stop()
	}
	close(n.queue)
	select {
	case <-n.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if c, ok := n.cfg.syncer.(io.Closer); ok {
		c.Close()
	}
	n.writeMark()
	n.log.Info("store node stopped", "lastSeq", n.lastSeq.Load())
	return err
}

// Status reports progress and health; safe from any goroutine.
func (n *Node) Status() events.StatusResult {
	lost := n.loss.lost()
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	return events.StatusResult{LastSeq: n.lastSeq.Load(), InFlight: int(n.inFlight.Load()),
		Healthy: n.halted == "", Reason: n.halted, LostEvents: lostCount(lost), LostRanges: lost}
}

// Ready reports whether the node accepts writes.
func (n *Node) Ready() error {
	if st := n.Status(); !st.Healthy {
		return errors.New(st.Reason)
	}
	return nil
}

func (n *Node) ensureStream(ctx context.Context) error {
	_, err := n.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:               n.cfg.stream,
		Description:        "storeloop events: one message per bucket mutation",
		Subjects:           []string{events.EventSubjectPrefix + ".>", events.SchemaSubjectPrefix + ".>"},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxMsgSize:         streamMaxMsgBytes,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowAtomicPublish: true,
		Duplicates:         time.Minute,
		Replicas:           n.cfg.replicas,
	})
	if err != nil {
		return fmt.Errorf("storenode: stream %s: %w", n.cfg.stream, err)
	}
	return nil
}

// rebuild replaces the state with the fold of the whole stream, read on a
// connection of its own; a sequence missing from it is data loss.
func (n *Node) rebuild(ctx context.Context) error {
	src, err := n.openReplay(ctx)
	if err != nil {
		return err
	}
	defer src.close()
	st := projections.NewState()
	schemas := map[string]*schema{}
	dd := newDedupeTable(n.cfg.dedupeWindow, n.cfg.dedupeSize, n.cfg.dedupeBytes)
	rr := newReplayReplies(dd, n.now())
	seqs := newSeqCheck()
	err = streamread.All(ctx, src.js, n.cfg.stream, func(seq uint64, msg jetstream.Msg) error {
		seqs.observe(seq)
		m, err := projections.DecodeMessage(msg.Subject(), msg.Data())
		if err != nil {
			return fmt.Errorf("storenode: replay seq %d: %w", seq, err)
		}
		if err := st.ApplyDecoded(seq, m); err != nil {
			return err
		}
		return rr.observe(msg.Headers(), m, schemas, st)
	})
	if err != nil {
		return err
	}
	if err := n.checkSeqs(seqs, src.last); err != nil {
		return err
	}
	// After accepted loss at the tail the stream's last sequence is past
	// the last event: appends must expect the former.
	st.LastSeq = max(st.LastSeq, src.last)
	n.state, n.schemas, n.dedupe = st, schemas, dd
	n.lastSeq.Store(st.LastSeq)
	return nil
}

// halt handles a batch that failed to commit: the speculative state is
// replaced by the fold of the stream (which holds exactly what was
// acknowledged by it). After a transient failure the node resumes; after a
// second writer it keeps refusing writes and says why. Runs on the loop.
func (n *Node) halt(cause error) {
	var apiErr *jetstream.APIError
	secondWriter := errors.As(cause, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
	reason := fmt.Sprintf("append failed: %v", cause)
	if secondWriter {
		reason = fmt.Sprintf("another process wrote to stream %s (wrong last sequence); refusing writes: stop the other writer and restart this node", n.cfg.stream)
	}
	n.setHalted(reason)
	n.log.Error("store node halted", "reason", reason)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.rebuild(ctx); err != nil {
		n.log.Error("rebuild after append failure failed; writes stay refused", "err", err)
		return
	}
	n.failMu.Lock()
	n.failErr = nil
	n.failMu.Unlock()
	if !secondWriter {
		n.setHalted("")
		n.log.Warn("store node resumed after rebuilding state from the stream", "lastSeq", n.state.LastSeq)
	}
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
