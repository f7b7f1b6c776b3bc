package storenode

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/tracing"
)

// ServiceName is the NATS micro service name (`nats micro ls` shows it).
const ServiceName = "storeloop-store"

// Version is the store node's service version.
const Version = "0.1.0"

// pending is one command on its way through the node.
type pending struct {
	cmd      string
	req      micro.Request
	body     any // the decoded request, a pointer to an events.*Request
	cmdID    string
	cause    events.Meta // correlation, causation, hop and rule from the headers
	received time.Time
	reply    []byte
	err      *events.Error   // the error in reply, for the span and metrics
	ctx      context.Context // carries the command's SERVER span
	span     trace.Span

	children *batchReplies // of a store.batch: its commands
	batch    *batchReplies // of a command of a batch: where its reply goes
	index    int           // in batch
}

// mutating reports whether the command writes.
func (p *pending) mutating() bool { return events.IsMutation(p.cmd) || p.cmd == events.CmdBatch }

func newRequestBody(cmd string) any {
	switch cmd {
	case events.CmdDefine:
		return &events.DefineRequest{}
	case events.CmdBuckets:
		return &events.BucketsRequest{}
	case events.CmdInsert:
		return &events.InsertRequest{}
	case events.CmdGet:
		return &events.GetRequest{}
	case events.CmdUpdate:
		return &events.UpdateRequest{}
	case events.CmdUpsert:
		return &events.UpsertRequest{}
	case events.CmdDelete:
		return &events.DeleteRequest{}
	case events.CmdQuery:
		return &events.QueryRequest{}
	case events.CmdWatch:
		return &events.WatchRequest{}
	case events.CmdCount:
		return &events.CountRequest{}
	case events.CmdAggregate:
		return &events.AggregateRequest{}
	case events.CmdTx:
		return &events.TxRequest{}
	case events.CmdStatus, events.CmdSnapshot:
		return &struct{}{}
	case events.CmdSnapshots:
		return &events.SnapshotsRequest{}
	case events.CmdBatch:
		return &events.BatchRequest{}
	}
	return nil
}

func (n *Node) serve() error {
	svc, err := micro.AddService(n.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "storeloop store node: bucket commands over request/reply",
	})
	if err != nil {
		return fmt.Errorf("storenode: micro service: %w", err)
	}
	g := svc.AddGroup(n.cfg.prefix)
	for _, cmd := range events.Commands {
		if err := g.AddEndpoint(cmd, n.handler(cmd, false)); err != nil {
			svc.Stop()
			return fmt.Errorf("storenode: endpoint %s: %w", cmd, err)
		}
		if events.ScopedCommand(cmd) {
			name, subject := scopedEndpoint(cmd)
			if err := g.AddEndpoint(name, n.handler(cmd, true), micro.WithEndpointSubject(subject)); err != nil {
				svc.Stop()
				return fmt.Errorf("storenode: endpoint %s: %w", name, err)
			}
		}
	}
	n.setService(svc)
	return nil
}

// handler decodes a request on the subscription's goroutine (in parallel
// with the loop) and queues it; the loop replies. A scoped handler serves
// the bucket-scoped subjects of cmd.
func (n *Node) handler(cmd string, scoped bool) micro.HandlerFunc {
	return func(r micro.Request) {
		p := &pending{cmd: cmd, req: r, received: time.Now()}
		p.ctx, p.span = tracing.StartCommandServer(tracing.Extract(context.Background(), nats.Header(r.Headers())), cmd, "")
		e := p.decode()
		if e == nil && scoped {
			e = checkScope(n.cfg.prefix, cmd, r.Subject(), p.body)
		}
		if e != nil {
			n.respond(p, marshalReply(nil, e), e)
			return
		}
		if p.span.IsRecording() {
			p.span.SetAttributes(p.attributes()...)
		}
		if cmd == events.CmdStatus {
			// Answered here, not queued: status reports the loop, it does
			// not wait for it, and is not itself counted in flight.
			n.respond(p, marshalReply(n.Status(), nil), nil)
			return
		}
		if cmd == events.CmdSnapshot || cmd == events.CmdSnapshots {
			go n.snapshotCommand(p)
			return
		}
		if p.mutating() || n.stale.Load() {
			// Refused at once: writes while halted, everything while the
			// state is being rebuilt.
			if reason := n.haltReason(); reason != "" {
				e := events.Errorf(events.CodeUnavailable, "%s", reason)
				n.respond(p, marshalReply(nil, e), e)
				return
			}
		}
		n.enqueue(p)
	}
}

// respond sends the reply and closes the command's span and metrics. Every
// reply is checked before it applies to fit the connection's max payload
// (see replyLimit); one that still does not (a remembered reply after the
// server's limit was lowered) is answered too_large rather than dropped.
// A reply that cannot be sent is logged and counted: the caller will time
// out and retry with the same command id. The reply of a command of a
// batch goes to its batch, which replies once all its commands have.
func (n *Node) respond(p *pending, reply []byte, e *events.Error) {
	if p.batch != nil {
		if e != nil {
			tracing.RecordError(p.span, e)
		}
		p.span.End()
		p.batch.answer(n, p.index, reply)
		return
	}
	if p.req == nil { // the store's own write (an expiry): nobody waits
		p.span.End()
		return
	}
	if b := p.children; b != nil && b.left.Load() > 0 {
		// A batch refused whole (halted, stale): its commands were never
		// staged, so the spans some opened from their own trace context
		// end here.
		for _, c := range b.children {
			c.span.End()
		}
	}
	if limit := n.replyLimit(); len(reply) > limit {
		n.log.Error("reply over the max payload", "cmd", p.cmd, "commandId", p.cmdID, "bytes", len(reply), "limit", limit)
		e = events.Errorf(events.CodeTooLarge, "reply of %d bytes is over the max payload of %d", len(reply), limit)
		reply = marshalReply(nil, e)
	}
	var err error
	if e != nil {
		err = e
		tracing.RecordError(p.span, e)
	}
	p.span.End()
	n.metrics.Command(p.ctx, p.cmd, err, time.Since(p.received))
	if err := p.req.Respond(reply); err != nil {
		n.replyFailures.Add(1)
		n.log.Warn("reply not sent", "cmd", p.cmd, "commandId", p.cmdID, "bytes", len(reply), "err", err)
	}
}

// ReplyFailures is the number of replies the connection refused to send.
func (n *Node) ReplyFailures() int64 { return n.replyFailures.Load() }

// replyLimit is the largest reply body the connection can send.
func (n *Node) replyLimit() int { return int(n.nc.MaxPayload()) }

// attributes describe the command on its span.
func (p *pending) attributes() []attribute.KeyValue {
	attrs := []attribute.KeyValue{tracing.AttrHop.Int(p.cause.Hop)}
	if b := bucketOf(p.body); b != "" {
		attrs = append(attrs, tracing.AttrBucket.String(b))
	}
	for _, kv := range []attribute.KeyValue{tracing.AttrCommandID.String(p.cmdID), tracing.AttrCorrelationID.String(p.cause.CorrelationID),
		tracing.AttrCausationID.String(p.cause.CausationID), tracing.AttrRule.String(p.cause.RuleID)} {
		if kv.Value.AsString() != "" {
			attrs = append(attrs, kv)
		}
	}
	return attrs
}

func bucketOf(body any) string {
	switch b := body.(type) {
	case *events.DefineRequest:
		return b.Bucket
	case *events.InsertRequest:
		return b.Bucket
	case *events.GetRequest:
		return b.Bucket
	case *events.UpdateRequest:
		return b.Bucket
	case *events.UpsertRequest:
		return b.Bucket
	case *events.DeleteRequest:
		return b.Bucket
	case *events.QueryRequest:
		return b.Bucket
	case *events.WatchRequest:
		return b.Bucket
	case *events.CountRequest:
		return b.Bucket
	case *events.AggregateRequest:
		return b.Bucket
	}
	return ""
}

func (p *pending) decode() *events.Error {
	p.body = newRequestBody(p.cmd)
	if e := decodeRequest(p.req.Data(), p.body); e != nil {
		return e
	}
	var e *events.Error
	p.cmdID, p.cause, e = decodeHeaders(nats.Header(p.req.Headers()))
	if e == nil && p.cmd == events.CmdBatch {
		e = p.decodeBatch()
	}
	return e
}

func (n *Node) enqueue(p *pending) {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	if n.closed {
		e := events.Errorf(events.CodeUnavailable, "store node is stopping")
		n.respond(p, marshalReply(nil, e), e)
		return
	}
	n.inFlight.Add(1)
	n.queue <- p
}
