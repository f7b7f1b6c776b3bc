package client

import (
	"cmp"
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/tracing"
)

// BatchResult is the outcome of one command of a [Client.Batch]: its
// result, or its error as an *events.Error (errors.Is and errors.As work).
type BatchResult struct {
	Result json.RawMessage
	Err    error
}

// Decode decodes the command's result into v (a *events.Record for an
// insert, update or upsert, a *events.DeleteResult, a *events.TxResult),
// or returns its error.
func (r BatchResult) Decode(v any) error {
	if r.Err != nil {
		return r.Err
	}
	return json.Unmarshal(r.Result, v)
}

// Record returns the record an insert, update or upsert stored.
func (r BatchResult) Record() (events.Record, error) {
	var rec events.Record
	err := r.Decode(&rec)
	return rec, err
}

// Batch sends cmds as one store.batch: the store applies them in order in
// one group commit, each on its own (not a transaction: one that fails
// changes nothing, the others apply). It returns one result per command, in
// order; the error is the batch's own (bad_request, too_large, unavailable
// after the retries) and then no command was applied.
//
// A command without a CommandID gets a fresh one, so every retry is safe:
// the whole batch is retried as any command is, and the commands answered
// unavailable or indeterminate are sent again, alone, by the same ids. The
// causal context of ctx ([WithCause]) applies to every command that sets
// none of its own. [WithCommandID] does not apply: give each command its id.
func (c *Client) Batch(ctx context.Context, cmds ...events.BatchCommand) ([]BatchResult, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	cmds = append([]events.BatchCommand(nil), cmds...)
	for i := range cmds {
		if cmds[i].CommandID == "" {
			cmds[i].CommandID = nuid.Next()
		}
	}
	out := make([]BatchResult, len(cmds))
	todo := make([]int, len(cmds))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		req := events.BatchRequest{Commands: make([]events.BatchCommand, len(todo))}
		for j, i := range todo {
			req.Commands[j] = cmds[i]
		}
		var res events.BatchResult
		if err := c.do(ctx, events.CmdBatch, "", req, &res); err != nil {
			return nil, err
		}
		if len(res.Results) != len(todo) {
			return nil, events.Errorf(events.CodeInternal, "batch of %d commands answered with %d results", len(todo), len(res.Results))
		}
		var again []int
		for j, i := range todo {
			r := res.Results[j]
			switch {
			case r.Error != nil:
				out[i] = BatchResult{Err: r.Error}
				if retryable(r.Error) {
					again = append(again, i)
				}
			case len(r.Result) == 0:
				// Not the store's answer: never report it as applied.
				out[i] = BatchResult{Err: events.Errorf(events.CodeInternal, "batch command %d answered with neither result nor error", i)}
			default:
				out[i] = BatchResult{Result: r.Result}
			}
		}
		if len(again) == 0 || attempt >= c.opts.retries {
			return out, nil
		}
		wait := backoff(attempt)
		c.log.DebugContext(ctx, "storeloop client: retrying batch commands", "commands", len(again), "attempt", attempt+1, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, nil
		case <-t.C:
		}
		todo = again
	}
}

// InsertCommand is an insert for [Client.Batch].
func InsertCommand(bucket string, rec events.Record) events.BatchCommand {
	return events.BatchCommand{Cmd: events.CmdInsert, Bucket: bucket, Record: rec}
}

// UpdateCommand is an update for [Client.Batch] (see [Bucket.Update]).
func UpdateCommand(bucket string, key any, changes events.Record, opts ...UpdateOption) events.BatchCommand {
	var w writeOptions
	for _, o := range opts {
		o.applyUpdate(&w)
	}
	return events.BatchCommand{Cmd: events.CmdUpdate, Bucket: bucket, Key: key, Changes: changes,
		Increment: w.increment, ExpectVersion: w.expectVersion}
}

// UpsertCommand is an upsert for [Client.Batch] (see [Bucket.Upsert]).
func UpsertCommand(bucket string, key any, rec events.Record, opts ...UpsertOption) events.BatchCommand {
	var w writeOptions
	for _, o := range opts {
		o.applyUpsert(&w)
	}
	return events.BatchCommand{Cmd: events.CmdUpsert, Bucket: bucket, Key: key, Record: rec, Increment: w.increment}
}

// DeleteCommand is a delete for [Client.Batch] (see [Bucket.Delete]).
func DeleteCommand(bucket string, key any, opts ...DeleteOption) events.BatchCommand {
	var w writeOptions
	for _, o := range opts {
		o.applyDelete(&w)
	}
	return events.BatchCommand{Cmd: events.CmdDelete, Bucket: bucket, Key: key, ExpectVersion: w.expectVersion}
}

// TxCommand is a transaction for [Client.Batch]: all its ops or none, as
// [Client.Tx].
func TxCommand(req events.TxRequest) events.BatchCommand {
	return events.BatchCommand{Cmd: events.CmdTx, Ops: req.Ops, Reads: req.Reads, QueryReads: req.QueryReads}
}

// BatchCommandFrom returns cmd carrying what ctx gives a standalone
// command: the id of [WithCommandID] (when cmd has none), the causal
// context of [WithCause] (fields cmd leaves empty) and the trace context
// of ctx, so that each command of a batch built from many contexts (a
// rule node's deliveries, say) keeps its own chain and trace.
func BatchCommandFrom(ctx context.Context, cmd events.BatchCommand) events.BatchCommand {
	if id, ok := CommandIDFrom(ctx); ok && cmd.CommandID == "" {
		cmd.CommandID = id
	}
	if cause, ok := CauseFrom(ctx); ok {
		cmd.CorrelationID = cmp.Or(cmd.CorrelationID, cause.CorrelationID)
		cmd.CausationID = cmp.Or(cmd.CausationID, cause.CausationID)
		if cmd.Rule == "" {
			cmd.Rule, cmd.RuleVersion = cause.RuleID, cause.RuleVersion
		}
		if cmd.Hop == nil {
			hop := cause.Hop
			cmd.Hop = &hop
		}
	}
	if cmd.TraceParent == "" {
		msg := &nats.Msg{}
		tracing.Inject(ctx, msg)
		cmd.TraceParent = msg.Header.Get(events.HeaderTraceParent)
		cmd.TraceState = msg.Header.Get(events.HeaderTraceState)
	}
	return cmd
}
