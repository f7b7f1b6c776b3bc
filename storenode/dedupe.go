package storenode

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
)

// dedupeTable remembers the reply of each command id, so that a command sent
// again (a client retry after a lost reply, a rule redelivery) returns the
// first reply and changes nothing. It keeps at most size ids, none older
// than window; the oldest go first.
type dedupeTable struct {
	window  time.Duration
	size    int
	entries map[string]dedupeEntry
	order   []string // ids in insertion order; order[head:] are live
	head    int
}

type dedupeEntry struct {
	reply []byte
	at    time.Time
}

func newDedupeTable(window time.Duration, size int) *dedupeTable {
	return &dedupeTable{window: window, size: size, entries: map[string]dedupeEntry{}}
}

func (d *dedupeTable) get(id string) ([]byte, bool) {
	e, ok := d.entries[id]
	return e.reply, ok
}

func (d *dedupeTable) put(id string, reply []byte, now time.Time) {
	if _, ok := d.entries[id]; !ok {
		d.order = append(d.order, id)
	}
	d.entries[id] = dedupeEntry{reply: reply, at: now}
	for d.head < len(d.order) {
		oldest := d.order[d.head]
		e, ok := d.entries[oldest]
		if ok && len(d.entries) <= d.size && now.Sub(e.at) <= d.window {
			break
		}
		delete(d.entries, oldest)
		d.head++
	}
	if d.head > len(d.order)/2 && d.head > 1024 {
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
type replayReplies struct {
	order   []string
	results map[string]*replayResult
}

type replayResult struct {
	tx     bool
	values []any
	at     time.Time
	// A transaction's events and layout, until its last event is seen.
	txEvents []*events.Event
	layout   []any
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

func newReplayReplies() *replayReplies {
	return &replayReplies{results: map[string]*replayResult{}}
}

func (r *replayReplies) observe(hdr nats.Header, m projections.Message, schemas map[string]*schema, st *projections.State) error {
	if se := m.Schema; se != nil {
		sc, err := compileSchema(se.Definition)
		if err != nil {
			return err
		}
		schemas[se.Definition.Bucket] = sc
		r.add(se.Meta, false, events.DefineResult{Bucket: se.Definition.Bucket})
		return nil
	}
	ev := m.Event
	r.add(ev.Meta, ev.Meta.TxID != "", eventResult(ev))
	if res := r.results[ev.Meta.CommandID]; res != nil && ev.Meta.TxID != "" {
		res.txEvents = append(res.txEvents, ev)
		if layout := hdr.Get(txLayoutHeader); layout != "" && len(res.txEvents) == 1 {
			if err := json.Unmarshal([]byte(layout), &res.layout); err != nil {
				return fmt.Errorf("storenode: %s: %w", txLayoutHeader, err)
			}
		}
		if len(res.txEvents) == ev.Meta.TxSize {
			if res.layout != nil {
				res.values = txResults(res.layout, res.txEvents, st)
			}
			res.txEvents, res.layout = nil, nil
		}
	}
	return nil
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

func (r *replayReplies) add(m events.Meta, tx bool, v any) {
	if m.CommandID == "" {
		return
	}
	res := r.results[m.CommandID]
	if res == nil {
		res = &replayResult{tx: tx}
		r.results[m.CommandID] = res
		r.order = append(r.order, m.CommandID)
	}
	res.values = append(res.values, v)
	res.at = time.UnixMilli(m.Time)
}

// fill puts the rebuilt replies into d, oldest first, so that its window and
// size bounds keep the newest.
func (r *replayReplies) fill(d *dedupeTable, now time.Time) {
	for _, id := range r.order {
		res := r.results[id]
		if now.Sub(res.at) > d.window {
			continue
		}
		var reply []byte
		if res.tx {
			reply = marshalReply(events.TxResult{Results: res.values}, nil)
		} else {
			reply = marshalReply(res.values[0], nil)
		}
		d.put(id, reply, res.at)
	}
}
