package client

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
)

// Write is one event in a record's provenance ([Client.Explain]): the event
// (Meta.Seq filled in), the subject it was appended on, and what caused it.
type Write struct {
	Subject string
	Event   *events.Event
	// Cause is the event named by the write's causation id: the event a
	// rule reacted to, itself with its cause, back to a write that no rule
	// made. It is nil for a write from outside (hop 0) and when the cause
	// is no longer in the stream. A cause's records are dropped: only its
	// subject, key and meta are kept.
	Cause *Write
}

// Outside reports whether no rule made the write.
func (w *Write) Outside() bool { return w.Event.Meta.RuleID == "" }

// Explain returns the provenance of the current value of a record: the
// writes since it was last inserted, newest first, each with the chain of
// events that caused it back to the write from outside that started its
// cascade. With field set, only the writes that changed that field are
// returned (an insert that set it, an update whose old and new values
// differ), possibly none. It reads the meta of the events in the stream
// (no tracing backend needed); a record that does not exist is an
// *events.Error with code not_found.
func (c *Client) Explain(ctx context.Context, bucket string, key any, field string) ([]*Write, error) {
	want, err := events.KeyString(key)
	if err != nil {
		return nil, events.Errorf(events.CodeBadRequest, "explain: %v", err)
	}
	byID := map[string]*Write{} // every event, by id: causes precede their effects
	var writes []*Write         // of the record, oldest first, since its last insert
	err = c.History(ctx, "", func(ev *events.Event, _ nats.Header) error {
		w := &Write{Subject: events.EventSubject(ev.Bucket, ev.Type), Event: ev}
		if ev.Meta.Hop > 0 {
			w.Cause = byID[ev.Meta.CausationID]
		}
		if k, err := events.KeyString(ev.Key); err == nil && k == want && ev.Bucket == bucket {
			if ev.Type == events.OpInserted || ev.Type == events.OpDeleted {
				writes = writes[:0]
			}
			writes = append(writes, w)
		}
		byID[ev.Meta.EventID] = &Write{Subject: w.Subject, Cause: w.Cause,
			Event: &events.Event{Type: ev.Type, Bucket: ev.Bucket, Key: ev.Key, Meta: ev.Meta}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(writes) == 0 || writes[len(writes)-1].Event.Type == events.OpDeleted {
		return nil, events.Errorf(events.CodeNotFound, "no record %v in bucket %s", key, bucket)
	}
	out := make([]*Write, 0, len(writes))
	for i := len(writes) - 1; i >= 0; i-- {
		if field == "" || changes(writes[i].Event, field) {
			out = append(out, writes[i])
		}
	}
	return out, nil
}

// changes reports whether ev, an insert or update, set or changed field.
func changes(ev *events.Event, field string) bool {
	if ev.Type == events.OpInserted {
		_, ok := ev.Record[field]
		return ok
	}
	old, had := ev.OldRecord[field]
	cur, has := ev.NewRecord[field]
	return had != has || !reflect.DeepEqual(old, cur)
}

// String is the write on one line: sequence, time, subject, key, rule,
// hop, the triggering event, command and correlation ids.
func (w *Write) String() string {
	m := w.Event.Meta
	at := time.UnixMilli(m.Time).UTC().Format("2006-01-02T15:04:05.000Z")
	s := fmt.Sprintf("seq=%d time=%s %s key=%v hop=%d", m.Seq, at, w.Subject, w.Event.Key, m.Hop)
	if m.RuleID != "" {
		s += " rule=" + m.RuleID
	}
	if m.RuleVersion != 0 {
		s += "@v" + strconv.Itoa(m.RuleVersion)
	}
	switch {
	case w.Cause != nil:
		s += fmt.Sprintf(" cause=%s#%d", w.Cause.Subject, w.Cause.Event.Meta.Seq)
	case m.Hop > 0:
		s += " cause=" + m.CausationID + " (not in the stream)"
	default:
		s += " (outside write)"
	}
	if m.CommandID != "" {
		s += " command=" + m.CommandID
	}
	return s + " correlation=" + m.CorrelationID
}
