package storenode

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/tracing"
)

// loop is the single writer: it takes every command waiting (up to
// maxBatch), executes them in arrival order against the state, appends all
// their events in one pipelined batch, syncs once, and only then replies.
func (n *Node) loop() {
	defer close(n.done)
	batch := make([]*pending, 0, n.cfg.maxBatch)
	for p := range n.queue {
		batch = append(batch[:0], p)
	fill:
		for len(batch) < n.cfg.maxBatch {
			select {
			case q, ok := <-n.queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
			default:
				break fill
			}
		}
		n.process(batch)
		n.inFlight.Add(-int64(len(batch)))
	}
}

// staged is a write of the current batch with the messages it appends.
type staged struct {
	p    *pending
	msgs []*nats.Msg
	dup  *staged // same command id as an earlier write of this batch
	err  *events.Error
	// result is kept to answer with; msgs carry the events.
	result any
	spans  []trace.Span // one PRODUCER span per message, ended on ack
}

func (s *staged) endSpans(err error) {
	for _, sp := range s.spans {
		tracing.RecordError(sp, err)
		sp.End()
	}
}

func (n *Node) process(batch []*pending) {
	var writes []*staged
	var reads []*pending
	byID := map[string]*staged{}
	for _, p := range batch {
		if !p.mutating() {
			reads = append(reads, p)
			continue
		}
		s := &staged{p: p}
		writes = append(writes, s)
		if p.cmdID != "" {
			if reply, ok := n.dedupe.get(p.cmdID); ok {
				p.reply = reply
				continue
			}
			if first, ok := byID[p.cmdID]; ok {
				s.dup = first
				continue
			}
			byID[p.cmdID] = s
		}
		n.stage(s)
	}

	var msgs [][]*nats.Msg
	for _, s := range writes {
		if len(s.msgs) > 0 {
			msgs = append(msgs, s.msgs)
		}
	}
	if len(msgs) > 0 {
		last, err := n.append(msgs)
		if err == nil && n.cfg.syncer != nil {
			err = n.cfg.syncer.Sync()
		}
		if err != nil {
			e := events.Errorf(events.CodeUnavailable, "append failed, retry: %v", err)
			unavailable := marshalReply(nil, e)
			for _, s := range writes {
				s.endSpans(err)
				n.respond(s.p, unavailable, e)
			}
			n.halt(err)
			n.answerReads(reads)
			return
		}
		n.state.LastSeq = last
		n.lastSeq.Store(last)
	}

	now := n.now()
	for _, s := range writes {
		s.endSpans(nil)
		for _, m := range s.msgs {
			if bucket, op, err := events.ParseEventSubject(m.Subject); err == nil {
				n.metrics.EventAppended(s.p.ctx, bucket, string(op))
			}
		}
		p := s.p
		if p.reply == nil {
			if s.dup != nil {
				p.reply = s.dup.p.reply
			} else {
				p.reply = marshalReply(s.result, s.err)
				if p.cmdID != "" && events.CodeOf(s.err) != events.CodeUnavailable {
					n.dedupe.put(p.cmdID, p.reply, now)
				}
			}
		}
		n.respond(p, p.reply, s.err)
	}
	n.answerReads(reads)
}

// stage executes one write against the state and prepares its messages.
func (n *Node) stage(s *staged) {
	var m *mutation
	var e *events.Error
	switch body := s.p.body.(type) {
	case *events.DefineRequest:
		var def *events.SchemaEvent
		def, e = n.define(*body)
		if e == nil {
			s.result = events.DefineResult{Bucket: body.Bucket}
			if def != nil {
				def.Meta = n.meta(s.p, "")
				s.add(n.message(events.SchemaSubject(body.Bucket), def, def.Meta.EventID))
			}
		}
		s.err = e
		return
	case *events.InsertRequest:
		m, e = n.insert(body.Bucket, body.Record)
	case *events.UpdateRequest:
		m, e = n.update(body.Bucket, body.Key, body.Changes, body.Increment, body.ExpectVersion)
	case *events.UpsertRequest:
		m, e = n.upsert(body.Bucket, body.Key, body.Record, body.Increment)
	case *events.DeleteRequest:
		m, e = n.delete(body.Bucket, body.Key, body.ExpectVersion)
	case *events.TxRequest:
		m, e = n.tx(body)
	default:
		e = events.Errorf(events.CodeInternal, "no executor for %s", s.p.cmd)
	}
	if e != nil {
		s.err = e
		return
	}
	s.result = m.result
	txID := ""
	if s.p.cmd == events.CmdTx {
		txID = uuid.NewString()
	}
	for i, ev := range m.events {
		ev.Meta = n.meta(s.p, txID)
		if txID != "" {
			ev.Meta.TxSize = len(m.events)
		}
		if i > 0 && s.p.cause.CorrelationID == "" {
			ev.Meta.CorrelationID = m.events[0].Meta.CorrelationID
		}
		s.add(n.message(events.EventSubject(ev.Bucket, ev.Type), ev, ev.Meta.EventID), tracing.AttrKey.String(fmt.Sprint(ev.Key)))
	}
}

// add stages msg with a PRODUCER span whose context travels in its headers,
// so that consumers of the event continue the command's trace.
func (s *staged) add(msg *nats.Msg, attrs ...attribute.KeyValue) {
	ctx, span := tracing.StartAppend(s.p.ctx, msg.Subject, attrs...)
	tracing.Inject(ctx, msg)
	s.msgs = append(s.msgs, msg)
	s.spans = append(s.spans, span)
}

// meta is the causal context of an event written by p. A command from
// outside starts a chain: its first event's id becomes the correlation id.
func (n *Node) meta(p *pending, txID string) events.Meta {
	m := events.Meta{
		EventID:       uuid.NewString(),
		Time:          n.now().UnixMilli(),
		CorrelationID: p.cause.CorrelationID,
		CausationID:   p.cause.CausationID,
		Hop:           p.cause.Hop,
		RuleID:        p.cause.RuleID,
		CommandID:     p.cmdID,
		TxID:          txID,
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.EventID
	}
	if m.CausationID == "" {
		m.CausationID = p.cmdID
	}
	return m
}

func (n *Node) message(subject string, body any, eventID string) *nats.Msg {
	data, err := json.Marshal(body)
	if err != nil {
		// Bodies are built from decoded JSON and validated records.
		panic(fmt.Sprintf("storenode: encode event: %v", err))
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(events.HeaderEventID, eventID)
	return msg
}

// append publishes the batch's messages pipelined, each expecting the
// previous one's sequence so that a second writer is detected. A group of
// several messages (a transaction) is one JetStream atomic batch.
func (n *Node) append(groups [][]*nats.Msg) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.appendTimeout)
	defer cancel()
	seq := n.state.LastSeq
	futures := make([]jetstream.PubAckFuture, 0, len(groups))
	for _, g := range groups {
		if len(g) == 1 {
			f, err := n.js.PublishMsgAsync(g[0], jetstream.WithExpectLastSequence(seq))
			if err != nil {
				return 0, err
			}
			futures = append(futures, f)
			seq++
			continue
		}
		batchID := uuid.NewString()
		for i, m := range g {
			m.Header.Set("Nats-Batch-Id", batchID)
			m.Header.Set("Nats-Batch-Sequence", fmt.Sprint(i+1))
			if i == 0 {
				m.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(seq))
			}
			if i < len(g)-1 {
				if err := n.nc.PublishMsg(m); err != nil {
					return 0, err
				}
				continue
			}
			m.Header.Set("Nats-Batch-Commit", "1")
			f, err := n.js.PublishMsgAsync(m)
			if err != nil {
				return 0, err
			}
			futures = append(futures, f)
		}
		seq += uint64(len(g))
	}
	var last uint64
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			last = ack.Sequence
		case err := <-f.Err():
			return 0, err
		case <-ctx.Done():
			return 0, fmt.Errorf("no acknowledgement from the stream: %w", ctx.Err())
		}
	}
	if last != seq {
		return 0, fmt.Errorf("stream acknowledged sequence %d, expected %d", last, seq)
	}
	return last, nil
}
