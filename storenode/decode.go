package storenode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
)

// maxRequestBytes caps a command request body. NATS caps messages too (1 MiB
// by default), but a server may be configured higher and the store should
// not depend on it.
const maxRequestBytes = 1 << 20

// decodeHeaders reads a command's Storeloop-* headers, each within its cap
// and all headers together within events.MaxHeaderBytes: what they carry is
// copied into every event the command appends, so an unbounded header
// would make the append itself fail.
func decodeHeaders(h nats.Header) (cmdID string, cause events.Meta, e *events.Error) {
	total := 0
	for name, values := range h {
		for _, v := range values {
			total += len(name) + len(v)
		}
	}
	if total > events.MaxHeaderBytes {
		return "", cause, events.Errorf(events.CodeTooLarge, "headers are %d bytes, at most %d together", total, events.MaxHeaderBytes)
	}
	var e1, e2, e3, e4 *events.Error
	cmdID, e1 = cappedHeader(h, events.HeaderCommandID, events.MaxCommandIDBytes)
	cause.CorrelationID, e2 = cappedHeader(h, events.HeaderCorrelationID, events.MaxCausalIDBytes)
	cause.CausationID, e3 = cappedHeader(h, events.HeaderCausationID, events.MaxCausalIDBytes)
	cause.RuleID, e4 = cappedHeader(h, events.HeaderRule, events.MaxRuleIDBytes)
	for _, err := range [...]*events.Error{e1, e2, e3, e4} {
		if err != nil {
			return "", events.Meta{}, err
		}
	}
	if hop := h.Get(events.HeaderHop); hop != "" {
		v, err := strconv.Atoi(hop)
		if err != nil || v < 0 {
			if len(hop) > 32 {
				hop = hop[:32] + "…"
			}
			return "", events.Meta{}, events.Errorf(events.CodeBadRequest, "%s %q is not a non-negative integer", events.HeaderHop, hop)
		}
		cause.Hop = v
	}
	if v := h.Get(events.HeaderRuleVersion); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || cause.RuleID == "" {
			return "", events.Meta{}, events.Errorf(events.CodeBadRequest, "%s %.32q: want a version from 1, with %s", events.HeaderRuleVersion, v, events.HeaderRule)
		}
		cause.RuleVersion = n
	}
	return cmdID, cause, nil
}

// cappedHeader is header name of h, refused past max bytes.
func cappedHeader(h nats.Header, name string, max int) (string, *events.Error) {
	v := h.Get(name)
	if len(v) > max {
		return "", events.Errorf(events.CodeTooLarge, "%s is %d bytes, at most %d", name, len(v), max)
	}
	return v, nil
}

// decodeRequest decodes a command request body into v strictly: the body
// must be one JSON object with no fields v does not have and nothing after
// it; an empty body is {}. Numbers decoded into an any are float64, as the
// contract says. Every failure is a bad_request *events.Error whose message
// names the field at fault when there is one. Like encoding/json, field
// names match case-insensitively ("Bucket" sets bucket).
func decodeRequest(data []byte, v any) *events.Error {
	if len(data) > maxRequestBytes {
		return events.Errorf(events.CodeTooLarge, "request too large: %d bytes, at most %d", len(data), maxRequestBytes)
	}
	switch body := bytes.TrimLeft(data, " \t\r\n"); {
	case len(body) == 0:
		data = []byte("{}")
	case body[0] != '{':
		return events.Errorf(events.CodeBadRequest, "request body must be a JSON object")
	}
	if b, ok := v.(*events.BatchRequest); ok && decodeBatchPlain(data, b) {
		return nil
	}
	if decodePlain(data, v) {
		return nil
	}
	return decodeStrict(data, v)
}

// decodeStrict decodes data into v with encoding/json, rejecting unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) *events.Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return events.Errorf(events.CodeBadRequest, "unexpected data after the request object")
	}
	return nil
}

// decodePlain decodes the common keyed requests (insert, get, update,
// upsert, delete) without reflection when the body is plain: valid JSON,
// only the request's own field names spelled exactly, each once, with
// values of the field's type. It reports false, having left v alone, for
// anything else — an unknown or differently cased field, a null, an
// expectVersion, invalid JSON — which decodeRequest then
// decodes with encoding/json, deciding and wording errors as always.
func decodePlain(data []byte, v any) bool {
	var (
		bucket          string
		key             any
		record, changes events.Record
		increment       map[string]float64
		seen            uint8
	)
	const (
		hasBucket = 1 << iota
		hasKey
		hasRecord
		hasChanges
		hasIncrement
	)
	ok := wirejson.ParseObject(data, func(name string, val any) bool {
		var field uint8
		var typed bool
		switch name {
		case "bucket":
			field = hasBucket
			bucket, typed = val.(string)
		case "key":
			field, key, typed = hasKey, val, true
		case "record":
			field = hasRecord
			record, typed = val.(map[string]any)
		case "changes":
			field = hasChanges
			changes, typed = val.(map[string]any)
		case "increment":
			field = hasIncrement
			increment, typed = numbers(val)
		}
		if !typed || seen&field != 0 {
			return false
		}
		seen |= field
		return true
	})
	if !ok {
		return false
	}
	var allowed uint8
	switch v.(type) {
	case *events.InsertRequest:
		allowed = hasBucket | hasRecord
	case *events.GetRequest, *events.DeleteRequest:
		allowed = hasBucket | hasKey
	case *events.UpsertRequest:
		allowed = hasBucket | hasKey | hasRecord | hasIncrement
	case *events.UpdateRequest:
		allowed = hasBucket | hasKey | hasChanges | hasIncrement
	default:
		return false
	}
	if seen&^allowed != 0 {
		return false
	}
	switch r := v.(type) {
	case *events.InsertRequest:
		r.Bucket, r.Record = bucket, record
	case *events.GetRequest:
		r.Bucket, r.Key = bucket, key
	case *events.DeleteRequest:
		r.Bucket, r.Key = bucket, key
	case *events.UpsertRequest:
		r.Bucket, r.Key, r.Record, r.Increment = bucket, key, record, increment
	case *events.UpdateRequest:
		r.Bucket, r.Key, r.Changes, r.Increment = bucket, key, changes, increment
	}
	return true
}

// numbers is an increment's value as a map of numbers, when it is an
// object of numbers only (encoding/json decides anything else).
func numbers(val any) (map[string]float64, bool) {
	m, ok := val.(map[string]any)
	if !ok {
		return nil, false
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		f, ok := v.(float64)
		if !ok {
			return nil, false
		}
		out[k] = f
	}
	return out, true
}

// decodeError turns an encoding/json error into a readable bad_request.
func decodeError(err error) *events.Error {
	var (
		syntax    *json.SyntaxError
		typ       *json.UnmarshalTypeError
		invalidTo *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &syntax):
		return events.Errorf(events.CodeBadRequest, "malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return events.Errorf(events.CodeBadRequest, "malformed JSON: unexpected end of input")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "request"
		}
		return events.Errorf(events.CodeBadRequest, "field %s: expected %s, got %s", field, jsonKindOf(typ.Type), typ.Value)
	case errors.As(err, &invalidTo):
		// The caller passed a non-pointer: a bug here, not in the request.
		return events.Errorf(events.CodeInternal, "decode request: %v", err)
	}
	// Unknown fields and the rest carry no typed error; their text names
	// the field ("json: unknown field \"foo\"").
	return events.Errorf(events.CodeBadRequest, "%s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKindOf names the JSON kind a Go type decodes from.
func jsonKindOf(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	}
	return fmt.Sprintf("value of Go type %s", t)
}
