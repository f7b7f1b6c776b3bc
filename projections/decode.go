package projections

import (
	"math"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
)

// Replay decodes every message of the stream: events.DecodeEvent's
// encoding/json spends most of a replay's time in reflection. decodeEvent
// decodes the bodies the store writes (exactly its field names, each
// once, values of their types) without it, and reports false for anything
// else, which DecodeEvent then decodes and judges as always.

// Event members, as bits.
const (
	evType = 1 << iota
	evBucket
	evKey
	evRecord
	evOldRecord
	evNewRecord
	evMeta
)

// decodeEvent decodes a plain event body, or reports false having decided
// nothing.
func decodeEvent(data []byte) (*events.Event, bool) {
	e := &events.Event{}
	var seen uint
	ok := wirejson.ParseObject(data, func(name string, v any) bool {
		var bit uint
		typed := true
		switch name {
		case "type":
			bit = evType
			var s string
			s, typed = v.(string)
			e.Type = events.Op(s)
		case "bucket":
			bit = evBucket
			e.Bucket, typed = v.(string)
		case "key":
			bit, e.Key = evKey, v
		case "record":
			bit = evRecord
			e.Record, typed = record(v)
		case "oldRecord":
			bit = evOldRecord
			e.OldRecord, typed = record(v)
		case "newRecord":
			bit = evNewRecord
			e.NewRecord, typed = record(v)
		case "meta":
			bit = evMeta
			typed = decodeMeta(v, &e.Meta)
		}
		if bit == 0 || !typed || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	return e, ok
}

// record is v as a record: an object, or null for none.
func record(v any) (events.Record, bool) {
	if v == nil {
		return nil, true
	}
	r, ok := v.(map[string]any)
	return r, ok
}

// decodeMeta fills m from a decoded meta object with only m's fields,
// each of its type (integers whole and exact in a float64).
func decodeMeta(v any, m *events.Meta) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for name, val := range obj {
		var ok bool
		switch name {
		case "eventId":
			m.EventID, ok = val.(string)
		case "correlationId":
			m.CorrelationID, ok = val.(string)
		case "causationId":
			m.CausationID, ok = val.(string)
		case "ruleId":
			m.RuleID, ok = val.(string)
		case "commandId":
			m.CommandID, ok = val.(string)
		case "txId":
			m.TxID, ok = val.(string)
		case "time":
			m.Time, ok = integer(val)
		case "hop":
			var n int64
			n, ok = integer(val)
			m.Hop = int(n)
		case "txSize":
			var n int64
			n, ok = integer(val)
			m.TxSize = int(n)
		case "seq":
			var n int64
			n, ok = integer(val)
			ok = ok && n >= 0
			m.Seq = uint64(n)
		}
		if !ok {
			return false
		}
	}
	return true
}

// integer is v as an int64 when it is a whole number a float64 holds
// exactly.
func integer(v any) (int64, bool) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}
