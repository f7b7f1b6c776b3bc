package rulenode

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/storeloop/storeloop/events"
)

// evalEvent is an event with its CEL activation, built on first use and
// then shared by every rule that sees the event and every action list.
type evalEvent struct {
	ev   *events.Event
	vars map[string]any
	err  error
	done bool
}

// activation returns eventVars(e.ev), computed once. Expressions and
// actions only read it (withVar copies, toJSON copies results).
func (e *evalEvent) activation() (map[string]any, error) {
	if !e.done {
		e.vars, e.err = eventVars(e.ev)
		e.done = true
	}
	return e.vars, e.err
}

// eventVars returns the CEL activation of an event: its JSON body (meta
// included) under EventVar, exactly what json.Unmarshal of json.Marshal(ev)
// into a map[string]any gives, so expressions see the wire form. It is
// built field by field instead of by that round trip (the rule path's
// largest cost): decoded records already hold JSON values and are shared,
// not copied; only a value that is not plain JSON takes the round trip.
func eventVars(ev *events.Event) (map[string]any, error) {
	body := make(map[string]any, 7)
	body["type"] = jsonString(string(ev.Type))
	body["bucket"] = jsonString(ev.Bucket)
	key, err := jsonValue(ev.Key)
	if err != nil {
		return nil, err
	}
	body["key"] = key
	for _, r := range [...]struct {
		name string
		rec  events.Record
	}{{"record", ev.Record}, {"oldRecord", ev.OldRecord}, {"newRecord", ev.NewRecord}} {
		if len(r.rec) == 0 { // omitempty
			continue
		}
		v, err := jsonValue(r.rec)
		if err != nil {
			return nil, err
		}
		body[r.name] = v
	}
	body["meta"] = metaVars(ev.Meta)
	return map[string]any{EventVar: body}, nil
}

// metaVars is the JSON form of meta as encoding/json gives it: the struct
// tags' names, omitempty fields left out, numbers as float64.
func metaVars(m events.Meta) map[string]any {
	out := make(map[string]any, 10)
	out["eventId"] = jsonString(m.EventID)
	out["time"] = float64(m.Time)
	out["correlationId"] = jsonString(m.CorrelationID)
	out["hop"] = float64(m.Hop)
	for _, f := range [...]struct{ name, v string }{
		{"causationId", m.CausationID}, {"ruleId", m.RuleID},
		{"commandId", m.CommandID}, {"txId", m.TxID}, {"reason", m.Reason},
	} {
		if f.v != "" {
			out[f.name] = jsonString(f.v)
		}
	}
	if m.TxSize != 0 {
		out["txSize"] = float64(m.TxSize)
	}
	if m.RuleVersion != 0 {
		out["ruleVersion"] = float64(m.RuleVersion)
	}
	if m.Seq != 0 {
		out["seq"] = float64(m.Seq)
	}
	return out
}

// jsonValue returns v as a JSON round trip would: v itself when it is
// already what json.Unmarshal produces (as decoded records are), else the
// round trip, which also fails where it fails (NaN, unsupported types).
func jsonValue(v any) (any, error) {
	if plainJSON(v) {
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return out, nil
}

// jsonString returns s as a round trip would: invalid UTF-8 comes back
// with U+FFFD for each bad byte.
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	v, _ := jsonValue(s) // a string always encodes
	return v.(string)
}

// plainJSON reports whether a round trip would return v unchanged: nil,
// bool, finite float64, valid UTF-8 strings, and non-nil []any and
// map[string]any of those. (A nil map or slice comes back as nil, invalid
// UTF-8 with U+FFFD.)
func plainJSON(v any) bool {
	switch x := v.(type) {
	case nil, bool:
		return true
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case string:
		return utf8.ValidString(x)
	case []any:
		if x == nil {
			return false
		}
		for _, e := range x {
			if !plainJSON(e) {
				return false
			}
		}
		return true
	case map[string]any:
		if x == nil {
			return false
		}
		for k, e := range x {
			if !utf8.ValidString(k) || !plainJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}
