package rulenode

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
	"github.com/storeloop/storeloop/tracing"
)

// coalescer sends the writes of concurrent rule actions to the store as
// store.batch requests, keeping each call synchronous: a caller queues its
// command and waits for that command's own result. A batch goes out as
// soon as a sender is free, with whatever is queued (at most max
// commands): nothing waits for a batch to fill, so an idle runner's write
// leaves at once, and under load the writes that queue while batches are
// in flight go together in the next one, as the store's group commit does.
//
// Order per record holds: the runner works on one event of a record at a
// time and each action waits for its result before the next, so two
// writes of one record are never queued together.
type coalescer struct {
	cl  *client.Client
	max int

	mu      sync.Mutex
	queue   []*queued
	senders int
}

// queued is one caller's command and, once done is closed, its result.
type queued struct {
	ctx  context.Context
	span trace.Span // the command's CLIENT span
	cmd  events.BatchCommand
	res  client.BatchResult
	done chan struct{}
}

// maxSenders bounds the batches in flight at once. A write that finds a
// sender free leaves at once; past that, writes queue behind the batches
// in flight and go together in the next one.
const maxSenders = 4

// Attributes of a coalesced write's CLIENT span: the store.batch request
// that carried it, shared by the spans of its commands.
const (
	AttrBatchID   = attribute.Key("storeloop.batch.id")   // the same for the commands of one request
	AttrBatchSize = attribute.Key("storeloop.batch.size") // commands in the request
)

func newCoalescer(cl *client.Client, max int) *coalescer {
	return &coalescer{cl: cl, max: max}
}

// write sends cmd, with ctx's command id, causal context and trace, in a
// batch and returns its result: the result or *events.Error the command
// alone would have had. Each command has a CLIENT span of its own, a
// child of ctx's (the rule's) span, named and attributed as a standalone
// command's, with the batch's id and size (AttrBatchID, AttrBatchSize); the store continues
// the command's trace from that span, so a cascade's trace keeps every
// hop. The batch's retries resend a command answered unavailable or
// indeterminate by the same id.
func (c *coalescer) write(ctx context.Context, cmd events.BatchCommand) client.BatchResult {
	ctx, span := tracing.StartCommandClient(ctx, cmd.Cmd, cmd.Bucket)
	q := &queued{ctx: ctx, span: span, cmd: client.BatchCommandFrom(ctx, cmd), done: make(chan struct{})}
	if span.IsRecording() {
		span.SetAttributes(tracing.AttrCommandID.String(q.cmd.CommandID))
	}
	c.mu.Lock()
	c.queue = append(c.queue, q)
	start := c.senders < maxSenders
	if start {
		c.senders++
	}
	c.mu.Unlock()
	if start {
		// This caller sends the next batch itself (its own command is in
		// it unless more than max wait before it): an idle runner's write
		// costs no goroutine hop. Writes queued meanwhile go on in the
		// background.
		c.flush(c.next())
		c.mu.Lock()
		more := len(c.queue) > 0
		if !more {
			c.senders--
		}
		c.mu.Unlock()
		if more {
			go c.send()
		}
	}
	var res client.BatchResult
	select {
	case <-q.done:
		res = q.res
	case <-ctx.Done():
		// The command may still be sent: it has its id, so the event's
		// redelivery applies it at most once.
		res = client.BatchResult{Err: ctx.Err()}
	}
	tracing.RecordError(span, res.Err)
	span.End()
	return res
}

// next takes the next batch off the queue: at most max commands, in the
// order they came.
func (c *coalescer) next() []*queued {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), c.max)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	return batch
}

// send flushes the queue, one batch at a time, until it is empty, then
// gives up its sender's slot.
func (c *coalescer) send() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.senders--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.flush(c.next())
	}
}

// flush sends batch, leaving out the callers that have given up, and hands
// each caller its result.
func (c *coalescer) flush(batch []*queued) {
	live := make([]*queued, 0, len(batch))
	cmds := make([]events.BatchCommand, 0, len(batch))
	for _, q := range batch {
		if q.ctx.Err() == nil {
			live = append(live, q)
			cmds = append(cmds, q.cmd)
		}
	}
	if len(live) == 0 {
		return
	}
	var id string
	for _, q := range live {
		if q.span.IsRecording() {
			if id == "" {
				id = nuid.Next()
			}
			q.span.SetAttributes(AttrBatchID.String(id), AttrBatchSize.Int(len(live)))
		}
	}
	results := c.batch(batchContext(live[0].span), cmds)
	for i, q := range live {
		q.res = results[i]
		close(q.done)
	}
}

// batchContext is the context of a batch request: the trace of its first
// command, not sampled. The commands' own spans are the trace's hops; the
// batch's CLIENT and SERVER spans would only add a store.batch span to
// one of them (or a trace of its own) for every batch.
func batchContext(first trace.Span) context.Context {
	sc := first.SpanContext()
	return trace.ContextWithSpanContext(context.Background(), sc.WithTraceFlags(sc.TraceFlags().WithSampled(false)))
}

// batch sends cmds as one store.batch and returns their results, a
// failure of the whole request as each command's error. When together they
// pass the request's caps (too_large, or the connection's max payload:
// nothing applied) it sends them as two halves, down to single commands
// that the store judges as it would alone. The batch outlives any one
// caller: each waits on its own context.
func (c *coalescer) batch(ctx context.Context, cmds []events.BatchCommand) []client.BatchResult {
	results, err := c.cl.Batch(ctx, cmds...)
	switch {
	case err == nil:
		return results
	case len(cmds) > 1 && (errors.Is(err, events.ErrTooLarge) || errors.Is(err, nats.ErrMaxPayload)):
		half := len(cmds) / 2
		return append(c.batch(ctx, cmds[:half]), c.batch(ctx, cmds[half:])...)
	}
	results = make([]client.BatchResult, len(cmds))
	for i := range results {
		results[i].Err = err
	}
	return results
}

// batchRecord is the record of an insert, update or upsert's result,
// decoded without reflection for the common reply, a JSON object.
func batchRecord(res client.BatchResult) (events.Record, error) {
	if res.Err != nil {
		return nil, res.Err
	}
	if v, ok := wirejson.Parse(res.Result); ok {
		if rec, ok := v.(map[string]any); ok {
			return rec, nil
		}
	}
	return res.Record()
}
