package storenode

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
	"github.com/storeloop/storeloop/projections"
)

// dedupeTable remembers the reply of each command id, so that a command sent
// again (a client retry after a lost reply, a rule redelivery) returns the
// first reply and changes nothing. It keeps at most size ids and maxBytes
// of replies and ids, none older than window; the oldest go first, but the
// newest entry always stays, so every command is remembered at least until
// the next one.
type dedupeTable struct {
	window   time.Duration
	size     int
	maxBytes int
	bytes    int // held by the live entries, see entryBytes
	entries  map[string]dedupeEntry
	order    []string // ids in insertion order; order[head:] are live
	head     int
	base     int // the insertion number of order[0]
}

type dedupeEntry struct {
	reply []byte
	at    time.Time
	slot  int // its insertion number: an id put again leaves a stale slot behind
}

// dedupeEntryOverhead approximates what an entry costs beside its id and
// reply: the map slot, the order slot and the time.
const dedupeEntryOverhead = 96

// entryBytes is what the entry of id with reply holds: the id twice (map
// key and order) and the reply.
func entryBytes(id string, reply []byte) int { return 2*len(id) + len(reply) + dedupeEntryOverhead }

func newDedupeTable(window time.Duration, size, maxBytes int) *dedupeTable {
	return &dedupeTable{window: window, size: size, maxBytes: maxBytes, entries: map[string]dedupeEntry{}}
}

func (d *dedupeTable) get(id string) ([]byte, bool) {
	e, ok := d.entries[id]
	return e.reply, ok
}

// put remembers reply for id as of now (an id put again is renewed), then
// drops the oldest entries past the bounds.
func (d *dedupeTable) put(id string, reply []byte, now time.Time) {
	if old, ok := d.entries[id]; ok {
		d.bytes -= entryBytes(id, old.reply)
	}
	d.entries[id] = dedupeEntry{reply: reply, at: now, slot: d.base + len(d.order)}
	d.order = append(d.order, id)
	d.bytes += entryBytes(id, reply)
	for ; d.head < len(d.order)-1; d.head++ {
		oldest := d.order[d.head]
		e, ok := d.entries[oldest]
		if !ok || e.slot != d.base+d.head {
			continue // a stale slot
		}
		if len(d.entries) <= d.size && d.bytes <= d.maxBytes && now.Sub(e.at) <= d.window {
			break
		}
		delete(d.entries, oldest)
		d.bytes -= entryBytes(oldest, e.reply)
	}
	if d.head > len(d.order)/2 && d.head > 1024 {
		d.base += d.head
		d.order = append([]string(nil), d.order[d.head:]...)
		d.head = 0
	}
}

// replayReplies rebuilds the replies of the commands recorded in the stream
// (meta.commandId) while it is replayed: an insert's reply is its record, an
// update's its new record, a delete's {"deleted":true}, a transaction's the
// list of its ops' results (see txLayoutHeader), a define's the bucket
// name. Commands that appended nothing (errors, no-op updates, deletes of
// missing keys) left no trace and are not remembered across a restart;
// executing them again is what they did the first time: nothing.
//
// Replies go into the table as the stream is read, so the table's bounds
// hold during replay too: only a transaction whose last event is not yet
// read is kept aside.
type replayReplies struct {
	table   *dedupeTable
	horizon time.Time            // commands older than this are past the window
	txs     map[string]*replayTx // by tx id: a retry of a tx cut by accepted loss is a tx of its own
}

// replayTx is a transaction whose events are being read.
type replayTx struct {
	events []*events.Event
	layout []any
}

// txLayoutHeader, on the first message of a transaction some of whose ops
// appended nothing, is the JSON list of what each op's result is: "e" the
// next event's result, "d" {"deleted":false}, or [bucket, key] for a no-op
// update or upsert, whose result is that record as it was at that op.
const txLayoutHeader = "Storeloop-Tx-Layout"

const (
	txLayoutEvent      = "e"
	txLayoutNotDeleted = "d"
)

func newReplayReplies(d *dedupeTable, now time.Time) *replayReplies {
	return &replayReplies{table: d, horizon: now.Add(-d.window), txs: map[string]*replayTx{}}
}

func (r *replayReplies) observe(hdr nats.Header, m projections.Message, schemas map[string]*schema, st *projections.State) error {
	if se := m.Schema; se != nil {
		sc, err := compileSchema(se.Definition)
		if err != nil {
			return err
		}
		schemas[se.Definition.Bucket] = sc
		r.remember(se.Meta, events.DefineResult{Bucket: se.Definition.Bucket})
		return nil
	}
	ev := m.Event
	if ev.Meta.CommandID == "" {
		return nil
	}
	if ev.Meta.TxID == "" {
		if ev.Meta.Reason == "" { // an eviction is no op's result
			r.remember(ev.Meta, eventResult(ev))
		}
		return nil
	}
	tx := r.txs[ev.Meta.TxID]
	if tx == nil {
		tx = &replayTx{}
		r.txs[ev.Meta.TxID] = tx
		if layout := hdr.Get(txLayoutHeader); layout != "" {
			if err := json.Unmarshal([]byte(layout), &tx.layout); err != nil {
				return fmt.Errorf("storenode: %s: %w", txLayoutHeader, err)
			}
		}
	}
	tx.events = append(tx.events, ev)
	if len(tx.events) == ev.Meta.TxSize {
		delete(r.txs, ev.Meta.TxID)
		ops := slices.DeleteFunc(tx.events, func(e *events.Event) bool { return e.Meta.Reason != "" }) // evictions are no op's result
		var results []any
		if tx.layout != nil {
			results = txResults(tx.layout, ops, st)
		} else {
			results = make([]any, len(ops))
			for i, e := range ops {
				results[i] = eventResult(e)
			}
		}
		r.remember(ev.Meta, txResultJSON(results))
	}
	return nil
}

// remember puts a rebuilt reply into the table.
func (r *replayReplies) remember(m events.Meta, result any) {
	if m.CommandID == "" {
		return
	}
	at := time.UnixMilli(m.Time)
	if at.Before(r.horizon) {
		return
	}
	r.table.put(m.CommandID, marshalReply(result, nil), at)
}

// txResultJSON is the result of a transaction: events.TxResult as
// encoding/json writes it, its records encoded without reflection (a
// 500-op transaction's reply is rebuilt at every replay).
func txResultJSON(results []any) any {
	b, err := wirejson.Append(append(make([]byte, 0, 64*len(results)), `{"results":`...), results)
	if err != nil {
		return events.TxResult{Results: results} // marshalReply words the error
	}
	return json.RawMessage(append(b, '}'))
}

// eventResult is the result of the command op that appended ev.
func eventResult(ev *events.Event) any {
	if ev.Type == events.OpDeleted {
		return events.DeleteResult{Deleted: true}
	}
	return ev.Current()
}

// txResults rebuilds a transaction's results from its layout and events;
// st is the state right after the transaction.
func txResults(layout []any, evs []*events.Event, st *projections.State) []any {
	out := make([]any, 0, len(layout))
	next := 0
	for _, l := range layout {
		switch x := l.(type) {
		case string:
			if x == txLayoutNotDeleted || next >= len(evs) {
				out = append(out, events.DeleteResult{})
				continue
			}
			out = append(out, eventResult(evs[next]))
			next++
		case []any:
			if len(x) != 2 {
				out = append(out, nil)
				continue
			}
			bucket, _ := x[0].(string)
			out = append(out, recordAt(bucket, x[1], evs, next, st))
		}
	}
	return out
}

// recordAt is the record under bucket/key after the first pos events of a
// transaction: the last of those events on it, else what the first later
// event on it found, else (untouched by the transaction) its record in st.
func recordAt(bucket string, key any, evs []*events.Event, pos int, st *projections.State) events.Record {
	k, err := events.KeyString(key)
	if err != nil {
		return nil
	}
	same := func(ev *events.Event) bool {
		ek, err := events.KeyString(ev.Key)
		return err == nil && ev.Bucket == bucket && ek == k
	}
	for i := pos - 1; i >= 0; i-- {
		if same(evs[i]) {
			return evs[i].Current()
		}
	}
	for _, ev := range evs[pos:] {
		if same(ev) {
			if ev.Type == events.OpUpdated {
				return ev.OldRecord
			}
			return ev.Record
		}
	}
	if b := st.Bucket(bucket); b != nil {
		r, _ := b.Get(k)
		return r
	}
	return nil
}
