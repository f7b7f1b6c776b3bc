package events

import (
	"strconv"
	"unsafe"

	"github.com/storeloop/storeloop/internal/wirejson"
)

// decodeEventPlain decodes the event bodies the store writes (exact field
// names, each once, numbers of meta in integer form) without reflection,
// into what json.Unmarshal gives. It reports false for anything else —
// unknown or repeated fields, field names in another case, nulls where a
// string or meta is expected, numbers encoding/json would refuse for an
// integer field — and DecodeEvent leaves those to encoding/json, which
// decides them and words the errors.
func decodeEventPlain(data []byte) (*Event, bool) {
	var e Event
	var seen uint8
	ok := wirejson.ParseObjectText(data, func(key string, text []byte) bool {
		var bit uint8
		var ok bool
		switch key {
		case "type":
			bit = 1
			var s string
			s, ok = plainString(text)
			e.Type = Op(s)
		case "bucket":
			bit = 2
			e.Bucket, ok = plainString(text)
		case "key":
			bit = 4
			e.Key, ok = wirejson.Parse(text)
		case "record":
			bit = 8
			e.Record, ok = plainRecord(text)
		case "oldRecord":
			bit = 16
			e.OldRecord, ok = plainRecord(text)
		case "newRecord":
			bit = 32
			e.NewRecord, ok = plainRecord(text)
		case "meta":
			bit = 64
			ok = decodeMetaPlain(text, &e.Meta)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	return &e, ok
}

// plainRecord decodes a record field's text: an object, or null for none.
func plainRecord(text []byte) (Record, bool) {
	v, ok := wirejson.Parse(text)
	if !ok || v == nil {
		return nil, ok
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// plainString decodes a string field's text; null is left to encoding/json.
func plainString(text []byte) (string, bool) {
	if len(text) == 0 || text[0] != '"' {
		return "", false
	}
	v, ok := wirejson.Parse(text)
	s, isString := v.(string)
	return s, ok && isString
}

// decodeMetaPlain is decodeEventPlain for meta.
func decodeMetaPlain(data []byte, m *Meta) bool {
	var seen uint16
	return wirejson.ParseObjectText(data, func(key string, text []byte) bool {
		var bit uint16
		var ok bool
		switch key {
		case "eventId":
			bit = 1
			m.EventID, ok = plainString(text)
		case "time":
			bit = 2
			m.Time, ok = plainInt(text)
		case "correlationId":
			bit = 4
			m.CorrelationID, ok = plainString(text)
		case "causationId":
			bit = 8
			m.CausationID, ok = plainString(text)
		case "hop":
			bit = 16
			ok = plainIntTo(text, &m.Hop)
		case "ruleId":
			bit = 32
			m.RuleID, ok = plainString(text)
		case "ruleVersion":
			bit = 1024
			ok = plainIntTo(text, &m.RuleVersion)
		case "commandId":
			bit = 64
			m.CommandID, ok = plainString(text)
		case "txId":
			bit = 128
			m.TxID, ok = plainString(text)
		case "txSize":
			bit = 256
			ok = plainIntTo(text, &m.TxSize)
		case "reason":
			bit = 2048
			m.Reason, ok = plainString(text)
		case "seq":
			bit = 512
			var err error
			m.Seq, err = strconv.ParseUint(textString(text), 10, 64)
			ok = err == nil
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// plainInt parses an integer field's JSON text as encoding/json does for an
// int64 (and an int, which is 64 bits wherever storeloop builds): decimal
// digits only, in range.
func plainInt(text []byte) (int64, bool) {
	n, err := strconv.ParseInt(textString(text), 10, 64)
	return n, err == nil && int64(int(n)) == n
}

// plainIntTo is plainInt into an int field.
func plainIntTo(text []byte, dst *int) bool {
	n, ok := plainInt(text)
	*dst = int(n)
	return ok
}

// textString views text as a string for parsing, without a copy.
func textString(text []byte) string { return unsafe.String(unsafe.SliceData(text), len(text)) }
