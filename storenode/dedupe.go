package storenode

import (
	"encoding/json"
	"strings"
	"time"

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

func (d *dedupeTable) has(id string) bool {
	_, ok := d.entries[id]
	return ok
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
// list of its events' results, a define's the bucket name. Commands that
// appended nothing (errors, no-op updates, deletes of missing keys) left no
// trace and are not remembered across a restart; executing them again is
// what they did the first time: nothing.
type replayReplies struct {
	order   []string
	results map[string]*replayResult
}

type replayResult struct {
	tx     bool
	values []any
	at     time.Time
}

func newReplayReplies() *replayReplies {
	return &replayReplies{results: map[string]*replayResult{}}
}

func (r *replayReplies) observe(subject string, data []byte, schemas map[string]*schema, st *projections.State) error {
	if strings.HasPrefix(subject, events.SchemaSubjectPrefix+".") {
		var se events.SchemaEvent
		if err := json.Unmarshal(data, &se); err != nil {
			return err
		}
		sc, err := compileSchema(se.Definition)
		if err != nil {
			return err
		}
		schemas[se.Definition.Bucket] = sc
		r.add(se.Meta, false, events.DefineResult{Bucket: se.Definition.Bucket})
		return nil
	}
	var ev events.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return err
	}
	var v any = ev.Current()
	if ev.Type == events.OpDeleted {
		v = events.DeleteResult{Deleted: true}
	}
	r.add(ev.Meta, ev.Meta.TxID != "", v)
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
