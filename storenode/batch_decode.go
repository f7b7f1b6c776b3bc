package storenode

import (
	"strconv"
	"unsafe"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
)

// decodeBatchPlain decodes a store.batch request without reflection when
// it is plain: {"commands":[…]} and nothing else, each command with only
// BatchCommand's own field names spelled exactly, each once, with values
// of the field's type (strings as strings, integers in integer form, no
// nulls but for key). A tx command's ops and reads, and anything else,
// make it report false, leaving req alone: decodeRequest then decodes the
// batch with encoding/json, deciding and wording errors as always.
func decodeBatchPlain(data []byte, req *events.BatchRequest) bool {
	var cmds []events.BatchCommand
	ok := wirejson.ParseObjectText(data, func(name string, text []byte) bool {
		if name != "commands" || cmds != nil {
			return false
		}
		cmds = make([]events.BatchCommand, 0, 16)
		var seen uint32
		return wirejson.ParseObjectsText(text, func() bool {
			cmds = append(cmds, events.BatchCommand{})
			seen = 0
			return true
		}, func(name string, text []byte) bool {
			return decodeBatchMember(&cmds[len(cmds)-1], &seen, name, text)
		})
	})
	if !ok || cmds == nil {
		return false
	}
	req.Commands = cmds
	return true
}

// decodeBatchMember decodes member name of a command into c; seen holds
// the members c had before.
func decodeBatchMember(c *events.BatchCommand, seen *uint32, name string, text []byte) bool {
	var field uint32
	var ok bool
	switch name {
	case "cmd":
		field = 1 << 0
		c.Cmd, ok = plainString(text)
	case "commandId":
		field = 1 << 1
		c.CommandID, ok = plainString(text)
	case "correlationId":
		field = 1 << 2
		c.CorrelationID, ok = plainString(text)
	case "causationId":
		field = 1 << 3
		c.CausationID, ok = plainString(text)
	case "hop":
		field = 1 << 4
		var n int64
		if n, ok = plainInt(text); ok {
			hop := int(n)
			c.Hop = &hop
		}
	case "rule":
		field = 1 << 5
		c.Rule, ok = plainString(text)
	case "ruleVersion":
		field = 1 << 6
		var n int64
		n, ok = plainInt(text)
		c.RuleVersion = int(n)
	case "traceparent":
		field = 1 << 7
		c.TraceParent, ok = plainString(text)
	case "tracestate":
		field = 1 << 8
		c.TraceState, ok = plainString(text)
	case "bucket":
		field = 1 << 9
		c.Bucket, ok = plainString(text)
	case "key":
		field = 1 << 10
		c.Key, ok = wirejson.Parse(text)
	case "record":
		field = 1 << 11
		c.Record, ok = plainObject(text)
	case "changes":
		field = 1 << 12
		c.Changes, ok = plainObject(text)
	case "increment":
		field = 1 << 13
		var v any
		if v, ok = wirejson.Parse(text); ok {
			c.Increment, ok = numbers(v)
		}
	case "expectVersion":
		field = 1 << 14
		var n int64
		if n, ok = plainInt(text); ok {
			c.ExpectVersion = &n
		}
	}
	if !ok || *seen&field != 0 {
		return false
	}
	*seen |= field
	return true
}

// plainString is a string field's text decoded; null and other kinds are
// left to encoding/json.
func plainString(text []byte) (string, bool) {
	if len(text) == 0 || text[0] != '"' {
		return "", false
	}
	v, ok := wirejson.Parse(text)
	s, isString := v.(string)
	return s, ok && isString
}

// plainObject is an object field's text decoded (null is left to
// encoding/json).
func plainObject(text []byte) (map[string]any, bool) {
	v, ok := wirejson.Parse(text)
	m, isObject := v.(map[string]any)
	return m, ok && isObject
}

// plainInt parses an integer field's text as encoding/json does for an
// int64 (and an int, 64 bits wherever storeloop builds): decimal digits
// only, in range; 1.0 and 1e3 are left to encoding/json, which refuses them.
func plainInt(text []byte) (int64, bool) {
	n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(text), len(text)), 10, 64)
	return n, err == nil && int64(int(n)) == n
}
