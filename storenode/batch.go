package storenode

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/tracing"
)

// store.batch: independent writes in one request, staged in one flight and
// so made durable by one group commit. Each command becomes a pending of
// its own (a child) that goes through staging, dedupe, the commit and, after
// a failed append, the truthful resolution exactly as a standalone write
// does; its reply goes to the batch instead of the network (see respond),
// and the batch replies once every child has been answered.

// batchReplies collects the replies of a batch's commands.
type batchReplies struct {
	parent   *pending
	children []*pending
	replies  [][]byte     // each child's reply, {"result":…} or {"error":…}
	left     atomic.Int64 // children not yet answered
	err      *events.Error
}

// Envelope of a batch reply around the children's replies.
const (
	batchReplyHead = `{"result":{"results":[`
	batchReplyTail = `]}}`
)

// answer records child i's reply; the last one sends the batch's reply.
func (b *batchReplies) answer(n *Node, i int, reply []byte) {
	b.replies[i] = reply
	if b.left.Add(-1) != 0 {
		return
	}
	if b.err != nil {
		n.respond(b.parent, marshalReply(nil, b.err), b.err)
		return
	}
	out := make([]byte, 0, b.size())
	out = append(out, batchReplyHead...)
	for i, r := range b.replies {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	n.respond(b.parent, append(out, batchReplyTail...), nil)
}

// size is the length of the batch reply made of the children's replies.
func (b *batchReplies) size() int {
	size := len(batchReplyHead) + len(batchReplyTail) + len(b.children) - 1
	for _, c := range b.children {
		size += len(c.reply)
	}
	return size
}

// commands is how many commands p carries: a flight is capped in commands
// (WithMaxBatch), so that a batch weighs what its commands do.
func (p *pending) commands() int {
	if p.children != nil {
		return len(p.children.children)
	}
	return 1
}

// noSpan is what a child records on: the batch's SERVER span covers it, and
// its events continue the batch's trace (see staged.add).
var noSpan = trace.SpanFromContext(context.Background())

// decodeBatch splits a decoded batch request into its children. A command
// that is not well formed (an unknown cmd, a field its request does not
// take, a causal field past its cap) fails alone, when it is staged.
func (p *pending) decodeBatch() *events.Error {
	req := p.body.(*events.BatchRequest)
	switch {
	case p.cmdID != "":
		return events.Errorf(events.CodeBadRequest, "store.batch takes no %s: give each command its own commandId", events.HeaderCommandID)
	case len(req.Commands) == 0:
		return events.Errorf(events.CodeBadRequest, "batch needs at least one command")
	case len(req.Commands) > events.MaxBatchCommands:
		return events.Errorf(events.CodeTooLarge, "batch has %d commands, the cap is %d", len(req.Commands), events.MaxBatchCommands)
	}
	b := &batchReplies{parent: p, children: make([]*pending, len(req.Commands)), replies: make([][]byte, len(req.Commands))}
	b.left.Store(int64(len(req.Commands)))
	for i := range req.Commands {
		bc := &req.Commands[i]
		c := &pending{cmd: bc.Cmd, received: p.received, ctx: p.ctx, span: noSpan, batch: b, index: i}
		c.body, c.err = batchCommandBody(bc)
		if c.err == nil {
			c.cmdID, c.cause, c.err = batchCommandCause(bc, p.cause)
		}
		if c.err == nil && bc.TraceParent != "" {
			c.ctx, c.span = startCommandTrace(bc, c)
		}
		b.children[i] = c
	}
	p.children = b
	return nil
}

// startCommandTrace opens the SERVER span of a batch's command that
// carries its own trace context, as a standalone command's is opened from
// its headers.
func startCommandTrace(bc *events.BatchCommand, c *pending) (context.Context, trace.Span) {
	h := nats.Header{}
	h.Set(events.HeaderTraceParent, bc.TraceParent)
	if bc.TraceState != "" {
		h.Set(events.HeaderTraceState, bc.TraceState)
	}
	ctx, span := tracing.StartCommandServer(tracing.Extract(context.Background(), h), c.cmd, "")
	if span.IsRecording() {
		span.SetAttributes(c.attributes()...)
	}
	return ctx, span
}

// batchFieldsOf lists which of the request fields each batchable command
// takes (bucket aside, which every one but tx takes).
var batchFieldsOf = map[string][]string{
	events.CmdInsert: {"record"},
	events.CmdUpdate: {"key", "changes", "increment", "expectVersion"},
	events.CmdUpsert: {"key", "record", "increment"},
	events.CmdDelete: {"key", "expectVersion"},
	events.CmdTx:     {"ops", "reads", "queryReads"},
}

// batchCommandBody is the request of a batch's command, as the standalone
// command would have decoded it.
func batchCommandBody(bc *events.BatchCommand) (any, *events.Error) {
	allowed, ok := batchFieldsOf[bc.Cmd]
	if !ok {
		return nil, events.Errorf(events.CodeBadRequest, "cmd %q cannot be batched (want insert, update, upsert, delete or tx)", bc.Cmd)
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"bucket", bc.Bucket != "" && bc.Cmd == events.CmdTx},
		{"key", bc.Key != nil}, {"record", bc.Record != nil}, {"changes", bc.Changes != nil},
		{"increment", bc.Increment != nil}, {"expectVersion", bc.ExpectVersion != nil},
		{"ops", bc.Ops != nil}, {"reads", bc.Reads != nil}, {"queryReads", bc.QueryReads != nil},
	} {
		if f.set && (f.name == "bucket" || !slices.Contains(allowed, f.name)) {
			return nil, events.Errorf(events.CodeBadRequest, "%s takes no field %s", bc.Cmd, f.name)
		}
	}
	switch bc.Cmd {
	case events.CmdInsert:
		return &events.InsertRequest{Bucket: bc.Bucket, Record: bc.Record}, nil
	case events.CmdUpdate:
		return &events.UpdateRequest{Bucket: bc.Bucket, Key: bc.Key, Changes: bc.Changes, Increment: bc.Increment, ExpectVersion: bc.ExpectVersion}, nil
	case events.CmdUpsert:
		return &events.UpsertRequest{Bucket: bc.Bucket, Key: bc.Key, Record: bc.Record, Increment: bc.Increment}, nil
	case events.CmdDelete:
		return &events.DeleteRequest{Bucket: bc.Bucket, Key: bc.Key, ExpectVersion: bc.ExpectVersion}, nil
	}
	return &events.TxRequest{Ops: bc.Ops, Reads: bc.Reads, QueryReads: bc.QueryReads}, nil
}

// batchCommandCause is the command id and causal context of a batch's
// command: its own fields over the batch's headers, within the header caps.
func batchCommandCause(bc *events.BatchCommand, batch events.Meta) (string, events.Meta, *events.Error) {
	cause := batch
	for _, f := range []struct {
		name string
		v    string
		max  int
		dst  *string
	}{
		{"commandId", bc.CommandID, events.MaxCommandIDBytes, nil},
		{"correlationId", bc.CorrelationID, events.MaxCausalIDBytes, &cause.CorrelationID},
		{"causationId", bc.CausationID, events.MaxCausalIDBytes, &cause.CausationID},
		{"rule", bc.Rule, events.MaxRuleIDBytes, &cause.RuleID},
		{"traceparent", bc.TraceParent, events.MaxCausalIDBytes, nil},
		{"tracestate", bc.TraceState, events.MaxCausalIDBytes, nil},
	} {
		if len(f.v) > f.max {
			return "", events.Meta{}, events.Errorf(events.CodeTooLarge, "%s is %d bytes, at most %d", f.name, len(f.v), f.max)
		}
		if f.v != "" && f.dst != nil {
			*f.dst = f.v
		}
	}
	if bc.Hop != nil {
		if *bc.Hop < 0 {
			return "", events.Meta{}, events.Errorf(events.CodeBadRequest, "hop %d is not a non-negative integer", *bc.Hop)
		}
		cause.Hop = *bc.Hop
	}
	if bc.Rule != "" && bc.RuleVersion == 0 {
		// The batch's version belongs to the batch's rule, not this one.
		cause.RuleVersion = 0
	}
	if bc.RuleVersion != 0 {
		if bc.RuleVersion < 1 || cause.RuleID == "" {
			return "", events.Meta{}, events.Errorf(events.CodeBadRequest, "ruleVersion %d: want a version from 1, with rule", bc.RuleVersion)
		}
		cause.RuleVersion = bc.RuleVersion
	}
	return bc.CommandID, cause, nil
}

// stageCommands stages a batch's commands as writes of the flight. A
// command id seen earlier in the batch answers as the first one did. The
// ids are remembered only once the batch is known to be deliverable: a
// batch whose reply would not fit the max payload is undone whole and
// refused too_large.
func (n *Node) stageCommands(p *pending, halted string, now time.Time) []*staged {
	b := p.children
	n.inFlight.Add(int64(len(b.children) - 1)) // the batch was counted as one
	out := make([]*staged, len(b.children))
	seen := make(map[string][]byte, len(b.children))
	var remember []*pending // the first command of each id, in order
	for i, c := range b.children {
		s := &staged{p: c}
		out[i] = s
		first, dup := seen[c.cmdID]
		if !dup {
			first, dup = n.dedupe.get(c.cmdID)
		}
		if c.err != nil { // refused alone at decode
			s.err = c.err
			c.reply = marshalReply(nil, c.err)
			continue
		}
		if n.decide(s, halted, first, dup) && c.cmdID != "" {
			seen[c.cmdID] = c.reply
			remember = append(remember, c)
		}
	}
	if size, limit := b.size(), n.replyLimit(); size > limit {
		b.err = events.Errorf(events.CodeTooLarge, "the batch reply would be %d bytes, over the max payload of %d: nothing was applied (split the batch)", size, limit)
		for i := len(out) - 1; i >= 0; i-- {
			s := out[i]
			n.undo(&mutation{events: s.events})
			s.endSpans(b.err)
			s.msgs, s.events, s.spans, s.err = nil, nil, nil, b.err
		}
		return out
	}
	for _, c := range remember {
		n.dedupe.put(c.cmdID, c.reply, now)
	}
	return out
}
