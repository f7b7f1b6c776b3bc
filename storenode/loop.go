package storenode

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
	"github.com/storeloop/storeloop/tracing"
)

// loop is the single writer. It takes every command waiting (up to
// maxBatch commands, a store.batch counting as its commands), executes them
// in arrival order against the state (writes apply speculatively),
// publishes the batch's events pipelined, and hands the batch on as a
// flight to the acker and then the committer (see commit.go), which reply
// once it is acknowledged and synced. While earlier batches are being
// acknowledged and synced the loop already stages the next one.
func (n *Node) loop() {
	defer close(n.flights)
	batch := make([]*pending, 0, n.cfg.maxBatch)
	for {
		select {
		case p, ok := <-n.queue:
			if !ok {
				n.stopResolving()
				return
			}
			batch = append(batch[:0], p)
		case <-n.wake:
			n.recover()
			continue
		case <-n.retry.C:
			n.recover()
			continue
		case <-n.expiry.C:
			n.recover()
			n.expire()
			continue
		case <-n.lead.wake:
			n.reconcile()
			continue
		case m := <-n.followMsgs():
			if err := n.followed(m); err != nil {
				n.reconcile() // follows the rebuilt state
			}
			continue
		case st := <-n.snap.captures:
			st.reply <- n.captureStep(st)
			continue
		}
		commands := batch[0].commands()
	fill:
		for commands < n.cfg.maxBatch {
			select {
			case q, ok := <-n.queue:
				if !ok {
					break fill
				}
				batch = append(batch, q)
				commands += q.commands()
			default:
				break fill
			}
		}
		n.recover()
		n.flights <- n.stageBatch(batch)
		n.armExpiry()
	}
}

// flight is a staged batch on its way through the acker and committer, or,
// with barrier set, a marker the committer closes when it gets there.
type flight struct {
	writes    []*staged
	reads     []*pending
	futures   []appendAck
	published []*staged // the write of each future
	last      uint64    // the stream sequence after this batch
	pubErr    error     // publishing failed before any ack was awaited
	unsent    bool      // pubErr came before anything was published (signing): nothing applied
	settled   bool      // refused whole at staging: its replies stand
	deferred  bool      // caught in a failure: answered after the rebuild
	barrier   chan struct{}
}

// staged is a write of a batch with the messages it appends.
type staged struct {
	p      *pending
	msgs   []*nats.Msg
	events []*events.Event // the events among msgs, for the metrics
	err    *events.Error
	spans  []trace.Span // a PRODUCER span per message while tracing, ended on ack

	firstSeq uint64 // the stream sequence of msgs[0]
	outcome  int    // of the append, see awaitAcks
}

func (s *staged) endSpans(err error) {
	for _, sp := range s.spans {
		tracing.RecordError(sp, err)
		sp.End()
	}
}

// stageBatch executes a batch against the state and publishes its events.
// Replies are computed now and sent by the committer once the batch (and
// every batch before it) is durable.
func (n *Node) stageBatch(batch []*pending) *flight {
	f := &flight{}
	now := n.now()
	halted := n.haltReason()
	notLeader := n.serving(now)
	if n.stale.Load() || notLeader != "" {
		// The state is being rebuilt: nothing is true of it; or another
		// node may be writing.
		f.settled = true
		e := events.Errorf(events.CodeUnavailable, "%s", cmp.Or(notLeader, halted))
		for _, p := range batch {
			p.reply, p.err = marshalReply(nil, e), e
			f.reads = append(f.reads, p)
		}
		return f
	}
	for _, p := range batch {
		if p.cmd == events.CmdBatch {
			f.writes = append(f.writes, n.stageCommands(p, halted, now)...)
			continue
		}
		if !p.mutating() {
			result, e := n.read(p, f.stagedSeq(n.state.LastSeq))
			p.reply, p.err = marshalReply(result, e), e
			f.reads = append(f.reads, p)
			continue
		}
		s := &staged{p: p}
		f.writes = append(f.writes, s)
		first, dup := n.dedupe.get(p.cmdID) // the table never holds ""
		if n.decide(s, halted, first, dup) && p.cmdID != "" {
			n.dedupe.put(p.cmdID, p.reply, now)
		}
	}
	n.appendWrites(f)
	return f
}

// appendWrites proves and publishes the messages of f's writes.
func (n *Node) appendWrites(f *flight) {
	var groups [][]*nats.Msg
	for _, s := range f.writes {
		if len(s.msgs) > 0 {
			groups = append(groups, s.msgs)
			f.published = append(f.published, s)
		}
	}
	f.last = n.state.LastSeq
	if len(groups) > 0 {
		f.pubErr = n.prove(f.writes)
		last := f.published[len(f.published)-1]
		f.last = last.firstSeq + uint64(len(last.msgs)) - 1
		if f.unsent = f.pubErr != nil; !f.unsent {
			f.futures, f.pubErr = n.publish(groups)
		}
		n.state.LastSeq = f.last
	}
}

// decide sets the reply of one write: refused while the node is halted,
// the first reply again for a duplicate (sent no earlier than this
// flight's commit, which follows the first command's), else the result of
// executing it. It reports whether the write was executed, so that the
// caller remembers its reply under its command id.
func (n *Node) decide(s *staged, halted string, first []byte, dup bool) bool {
	p := s.p
	switch {
	case halted != "":
		s.err = events.Errorf(events.CodeUnavailable, "%s", halted)
		p.reply, p.err = marshalReply(nil, s.err), s.err
	case dup:
		p.reply = first
	default:
		result := n.stage(s)
		p.reply, p.err = marshalReply(result, s.err), s.err
		return true
	}
	return false
}

// stage executes one write against the state, prepares its messages and
// returns its result (nil with s.err set when it failed).
func (n *Node) stage(s *staged) any {
	n.state.Settle() // what was staged before is not undone with this write
	var m *mutation
	var e *events.Error
	switch body := s.p.body.(type) {
	case *events.DefineRequest:
		var def *events.SchemaEvent
		if def, e = n.define(*body); e != nil {
			s.err = e
			return nil
		}
		if def != nil {
			def.Meta = n.meta(s.p, "")
			s.add(n.message(events.SchemaSubject(body.Bucket), mustJSON(def), def.Meta.EventID), nil)
		}
		return events.DefineResult{Bucket: body.Bucket}
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
		return nil
	}
	txID := ""
	if s.p.cmd == events.CmdTx {
		txID = nuid.Next()
	}
	bodies := make([][]byte, len(m.events))
	for i, ev := range m.events {
		reason := ev.Meta.Reason // an eviction the write caused
		ev.Meta = n.meta(s.p, txID)
		ev.Meta.Reason = reason
		if txID != "" {
			ev.Meta.TxSize = len(m.events)
		}
		if i > 0 && s.p.cause.CorrelationID == "" {
			ev.Meta.CorrelationID = m.events[0].Meta.CorrelationID
		}
		var current []byte
		bodies[i], current = encodeEvent(ev)
		if len(current) > n.cfg.maxRecordBytes {
			n.undo(m)
			s.err = events.Errorf(events.CodeValidation, "record is %d bytes, over the limit of %d", len(current), n.cfg.maxRecordBytes)
			return nil
		}
		if e := n.checkEventSize(len(bodies[i])); e != nil {
			n.undo(m)
			s.err = e
			return nil
		}
		if _, isRecord := m.result.(events.Record); isRecord && len(m.events) == 1 {
			// The reply is the record just encoded for the event.
			m.result = json.RawMessage(current)
		}
	}
	if m.result, e = n.encodeResult(m.result); e != nil {
		n.undo(m)
		s.err = e
		return nil
	}
	for i, ev := range m.events {
		s.add(n.message(events.EventSubject(ev.Bucket, ev.Type), bodies[i], ev.Meta.EventID), ev.Key)
	}
	s.events = m.events
	if m.layout != nil && len(s.msgs) > 0 {
		layout, _ := json.Marshal(m.layout) // bucket names and request keys
		s.msgs[0].Header.Set(txLayoutHeader, string(layout))
	}
	return m.result
}

// add stages msg with a PRODUCER span whose context travels in its headers,
// so that consumers of the event continue the command's trace. key, when
// not nil, is the record's key. When the command's span is not recording
// (tracing off, or the trace not sampled) a child span would record nothing
// either, so the command's own context travels instead, at no cost.
func (s *staged) add(msg *nats.Msg, key any) {
	s.msgs = append(s.msgs, msg)
	if !s.p.span.IsRecording() {
		tracing.Inject(s.p.ctx, msg)
		return
	}
	ctx, span := tracing.StartAppend(s.p.ctx, msg.Subject)
	if key != nil && span.IsRecording() {
		span.SetAttributes(tracing.AttrKey.String(fmt.Sprint(key)))
	}
	tracing.Inject(ctx, msg)
	s.spans = append(s.spans, span)
}

// meta is the causal context of an event written by p. A command from
// outside starts a chain: its first event's id becomes the correlation id.
func (n *Node) meta(p *pending, txID string) events.Meta {
	m := events.Meta{
		EventID:       nuid.Next(),
		Time:          n.now().UnixMilli(),
		CorrelationID: p.cause.CorrelationID,
		CausationID:   p.cause.CausationID,
		Hop:           p.cause.Hop,
		RuleID:        p.cause.RuleID,
		RuleVersion:   p.cause.RuleVersion,
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

func (n *Node) message(subject string, body []byte, eventID string) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(events.HeaderEventID, eventID)
	return msg
}

// encodeEvent returns the body of ev, byte for byte json.Marshal(ev), and
// the encoding of the record as it is after ev (nil for a delete), a slice
// of the body: the record a write returns is encoded once, for the event
// and for the reply.
func encodeEvent(ev *events.Event) (body, current []byte) {
	b := make([]byte, 0, 512)
	b = append(b, `{"type":`...)
	b = wirejson.AppendString(b, string(ev.Type))
	b = append(b, `,"bucket":`...)
	b = wirejson.AppendString(b, ev.Bucket)
	b = append(b, `,"key":`...)
	b = mustAppendJSON(b, ev.Key)
	switch ev.Type {
	case events.OpInserted:
		b, current = appendRecordField(b, "record", ev.Record)
	case events.OpUpdated:
		b, _ = appendRecordField(b, "oldRecord", ev.OldRecord)
		b, current = appendRecordField(b, "newRecord", ev.NewRecord)
	case events.OpDeleted:
		b, _ = appendRecordField(b, "record", ev.Record)
	}
	b = append(b, `,"meta":`...)
	b = appendMeta(b, &ev.Meta)
	return append(b, '}'), current
}

// appendRecordField appends the omitempty record field name and returns
// the record's encoding, a slice of b.
func appendRecordField(b []byte, name string, r events.Record) (out, enc []byte) {
	if len(r) == 0 {
		return b, nil
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	start := len(b)
	b = mustAppendJSON(b, r)
	return b, b[start:len(b):len(b)]
}

// appendMeta encodes m as json.Marshal does, omitempty fields included.
func appendMeta(b []byte, m *events.Meta) []byte {
	b = append(b, `{"eventId":`...)
	b = wirejson.AppendString(b, m.EventID)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, m.Time, 10)
	b = appendStringField(b, "correlationId", m.CorrelationID, false)
	b = appendStringField(b, "causationId", m.CausationID, true)
	b = append(b, `,"hop":`...)
	b = strconv.AppendInt(b, int64(m.Hop), 10)
	b = appendStringField(b, "ruleId", m.RuleID, true)
	if m.RuleVersion != 0 {
		b = append(b, `,"ruleVersion":`...)
		b = strconv.AppendInt(b, int64(m.RuleVersion), 10)
	}
	b = appendStringField(b, "commandId", m.CommandID, true)
	b = appendStringField(b, "txId", m.TxID, true)
	if m.TxSize != 0 {
		b = append(b, `,"txSize":`...)
		b = strconv.AppendInt(b, int64(m.TxSize), 10)
	}
	b = appendStringField(b, "reason", m.Reason, true)
	if m.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
	}
	return append(b, '}')
}

func appendStringField(b []byte, name, v string, omitEmpty bool) []byte {
	if v == "" && omitEmpty {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return wirejson.AppendString(b, v)
}

// mustJSON encodes an event body. Bodies are built from decoded JSON and
// validated records, so encoding cannot fail.
func mustJSON(v any) []byte {
	return mustAppendJSON(nil, v)
}

func mustAppendJSON(b []byte, v any) []byte {
	b, err := wirejson.Append(b, v)
	if err != nil {
		panic(fmt.Sprintf("storenode: encode event: %v", err))
	}
	return b
}

// publish sends the groups' messages pipelined, each expecting the previous
// one's sequence so that a second writer is detected. A group of several
// messages (a transaction) is one JetStream atomic batch. It returns the
// acks to wait for, one per group (puback.go).
func (n *Node) publish(groups [][]*nats.Msg) (futures []appendAck, err error) {
	seq := n.state.LastSeq
	futures = make([]appendAck, 0, len(groups))
	defer func() {
		if err != nil { // the acker waits for none of them
			for _, a := range futures {
				n.acks.abandon(a)
			}
			futures = nil
		}
	}()
	for _, g := range groups {
		if len(g) == 1 {
			g[0].Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(seq, 10))
			a, err := n.acks.publish(n.nc, g[0], n.cfg.appendTimeout)
			if err != nil {
				return futures, err
			}
			futures = append(futures, a)
			seq++
			continue
		}
		batchID := nuid.Next()
		for i, m := range g {
			m.Header.Set("Nats-Batch-Id", batchID)
			m.Header.Set("Nats-Batch-Sequence", fmt.Sprint(i+1))
			if i == 0 {
				m.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(seq))
			}
			if i < len(g)-1 {
				if err := n.nc.PublishMsg(m); err != nil {
					return futures, err
				}
				continue
			}
			m.Header.Set("Nats-Batch-Commit", "1")
			f, err := n.js.PublishMsgAsync(m)
			if err != nil {
				return futures, err
			}
			futures = append(futures, appendAck{fut: f})
		}
		seq += uint64(len(g))
	}
	return futures, nil
}
