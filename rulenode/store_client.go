package rulenode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/tracing"
)

// MaxCommandIDLen is the longest Storeloop-Command-Id the store accepts.
const MaxCommandIDLen = 256

// CommandID returns the idempotency key of the command that rule ruleID of
// rule set set sends, for the event at stream sequence seq, at action path
// path: "<set>/<rule>/<seq>/<path>". The same event redelivered runs the
// same actions with the same paths, so the store answers the second
// command with the first reply and changes nothing. Ids longer than
// MaxCommandIDLen keep a readable prefix and end in a SHA-256 of the whole.
func CommandID(set, ruleID string, seq uint64, path string) string {
	id := set + "/" + ruleID + "/" + strconv.FormatUint(seq, 10) + "/" + path
	if len(id) <= MaxCommandIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	h := hex.EncodeToString(sum[:])
	return id[:MaxCommandIDLen-len(h)-1] + "~" + h
}

// errNoActionPath is a store call made outside an action: without a path
// it has no idempotent command id, and a made-up one could collide.
var errNoActionPath = errors.New("rulenode: store call without an action path")

// storeClient is the [Store] that rule actions use in a rule node: the Go
// client, with each write's command id derived from the delivery (rule
// set, rule, stream sequence) and the call's [ActionPath]. The causal
// context travels in ctx (client.WithCause), set by the runner.
type storeClient struct {
	cl     *client.Client
	set    string
	ruleID string
	seq    uint64
	// suffix ends every command id: a retry's (see [Runner.Retry]).
	suffix string
	// co, when set, sends the writes in store.batch requests ([WithBatching]).
	co *coalescer
}

func newStoreClient(cl *client.Client, set, ruleID string, seq uint64) *storeClient {
	return &storeClient{cl: cl, set: set, ruleID: ruleID, seq: seq}
}

// storeClient is the store of rule ruleID's actions for the event at
// stream sequence seq, coalescing writes when the runner does.
func (r *Runner) storeClient(ruleID string, seq uint64) *storeClient {
	sc := newStoreClient(r.cl, r.set.Name, ruleID, seq)
	sc.co = r.co
	return sc
}

// batched sends cmd through the coalescer when writes are coalesced: ok
// is false when they are not and the caller sends cmd as a single request.
func (s *storeClient) batched(ctx context.Context, cmd events.BatchCommand) (res client.BatchResult, ok bool) {
	if s.co == nil {
		return client.BatchResult{}, false
	}
	return s.co.write(ctx, cmd), true
}

// command returns ctx carrying the command id of the call at ctx's path.
func (s *storeClient) command(ctx context.Context) (context.Context, string, error) {
	path := ActionPath(ctx)
	if path == "" {
		return ctx, "", errNoActionPath
	}
	id := CommandID(s.set, s.ruleID, s.seq, path) + s.suffix
	return client.WithCommandID(ctx, id), id, nil
}

func (s *storeClient) Insert(ctx context.Context, bucket string, rec events.Record) (events.Record, error) {
	ctx, _, err := s.command(ctx)
	if err != nil {
		return nil, err
	}
	if res, ok := s.batched(ctx, client.InsertCommand(bucket, rec)); ok {
		return batchRecord(res)
	}
	return s.cl.Bucket(bucket).Insert(ctx, rec)
}

func (s *storeClient) Update(ctx context.Context, bucket string, key any, changes events.Record, increment map[string]float64, opts ...WriteOption) (events.Record, error) {
	ctx, _, err := s.command(ctx)
	if err != nil {
		return nil, err
	}
	var copts []client.UpdateOption
	if len(increment) > 0 {
		copts = append(copts, client.Increment(increment))
	}
	if v := ApplyWriteOptions(opts...).ExpectVersion; v != nil {
		copts = append(copts, client.ExpectVersion(*v))
	}
	if res, ok := s.batched(ctx, client.UpdateCommand(bucket, key, changes, copts...)); ok {
		return batchRecord(res)
	}
	return s.cl.Bucket(bucket).Update(ctx, key, changes, copts...)
}

func (s *storeClient) Upsert(ctx context.Context, bucket string, key any, rec events.Record, increment map[string]float64) (events.Record, error) {
	ctx, _, err := s.command(ctx)
	if err != nil {
		return nil, err
	}
	var opts []client.UpsertOption
	if len(increment) > 0 {
		opts = append(opts, client.Increment(increment))
	}
	if res, ok := s.batched(ctx, client.UpsertCommand(bucket, key, rec, opts...)); ok {
		return batchRecord(res)
	}
	return s.cl.Bucket(bucket).Upsert(ctx, key, rec, opts...)
}

func (s *storeClient) Delete(ctx context.Context, bucket string, key any, opts ...WriteOption) (bool, error) {
	ctx, _, err := s.command(ctx)
	if err != nil {
		return false, err
	}
	var copts []client.DeleteOption
	if v := ApplyWriteOptions(opts...).ExpectVersion; v != nil {
		copts = append(copts, client.ExpectVersion(*v))
	}
	if res, ok := s.batched(ctx, client.DeleteCommand(bucket, key, copts...)); ok {
		var out events.DeleteResult
		err := res.Decode(&out)
		return out.Deleted, err
	}
	return s.cl.Bucket(bucket).Delete(ctx, key, copts...)
}

func (s *storeClient) Tx(ctx context.Context, ops []events.TxOp, reads ...events.TxRead) ([]any, error) {
	ctx, _, err := s.command(ctx)
	if err != nil {
		return nil, err
	}
	req := events.TxRequest{Ops: ops, Reads: reads}
	if res, ok := s.batched(ctx, client.TxCommand(req)); ok {
		var out events.TxResult
		err := res.Decode(&out)
		return out.Results, err
	}
	return s.cl.Tx(ctx, req)
}

// Query reads; reads need no command id.
func (s *storeClient) Query(ctx context.Context, bucket string, where events.Where) ([]events.Record, error) {
	return s.cl.Bucket(bucket).Where(ctx, where)
}

// Publish sends a core NATS message. Core NATS has no deduplication, so a
// redelivered event publishes again; the message carries the same
// Storeloop-Command-Id every time so that subscribers can drop repeats.
// Reserved subjects are refused here, for Go handlers as for rule files:
// an event forged on bucket.> would make the store refuse writes.
func (s *storeClient) Publish(ctx context.Context, subject string, data []byte) error {
	if err := validPublishSubject(subject); err != nil {
		return err
	}
	if first, _, _ := strings.Cut(subject, "."); first == s.cl.CommandPrefix() {
		return reservedSubject(subject)
	}
	_, id, err := s.command(ctx)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(events.HeaderCommandID, id)
	if cause, ok := client.CauseFrom(ctx); ok {
		msg.Header.Set(events.HeaderCorrelationID, cause.CorrelationID)
		msg.Header.Set(events.HeaderCausationID, cause.CausationID)
		msg.Header.Set(events.HeaderHop, strconv.Itoa(cause.Hop))
		msg.Header.Set(events.HeaderRule, cause.RuleID)
	}
	tracing.Inject(ctx, msg)
	if err := s.cl.Conn().PublishMsg(msg); err != nil {
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeUnavailable, "publish on %s", subject), err)
	}
	return nil
}
