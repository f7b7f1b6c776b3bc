package events

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Record is a stored record: JSON object fields, with numbers as float64.
// Stored records also carry the meta fields below.
type Record = map[string]any

// Meta fields every stored record carries.
const (
	FieldVersion   = "_version"   // 1 on insert, +1 per update
	FieldCreatedAt = "_createdAt" // unix milliseconds
	FieldUpdatedAt = "_updatedAt" // unix milliseconds
)

// IsMetaField reports whether name is one of the store-maintained fields.
func IsMetaField(name string) bool {
	return name == FieldVersion || name == FieldCreatedAt || name == FieldUpdatedAt
}

// Event is the body of one message on bucket.<bucket>.<op>.
// Inserted and deleted events carry Record; updated events carry OldRecord
// and NewRecord.
type Event struct {
	Type      Op     `json:"type"`
	Bucket    string `json:"bucket"`
	Key       any    `json:"key"`
	Record    Record `json:"record,omitempty"`
	OldRecord Record `json:"oldRecord,omitempty"`
	NewRecord Record `json:"newRecord,omitempty"`
	Meta      Meta   `json:"meta"`
}

// Meta is the causal and transactional context of an event.
type Meta struct {
	EventID       string `json:"eventId"`
	Time          int64  `json:"time"` // unix milliseconds
	CorrelationID string `json:"correlationId"`
	CausationID   string `json:"causationId,omitempty"`
	Hop           int    `json:"hop"`
	RuleID        string `json:"ruleId,omitempty"`
	RuleVersion   int    `json:"ruleVersion,omitempty"` // of RuleID's deployed rule set (extension; 0: none)
	CommandID     string `json:"commandId,omitempty"`
	TxID          string `json:"txId,omitempty"`
	// TxSize is the number of events in the transaction TxID (extension).
	TxSize int `json:"txSize,omitempty"`
	// Reason says why the store itself wrote the event (extension): a
	// deleted event of an expiry (ReasonTTL) or an eviction (ReasonMaxSize).
	// Events of commands have none.
	Reason string `json:"reason,omitempty"`
	// Seq is the event's JetStream stream sequence. It is not in the stored
	// body (the stream knows it); readers fill it in when they decode.
	Seq uint64 `json:"seq,omitempty"`
}

// Reasons of Meta.Reason.
const (
	ReasonTTL     = "ttl"
	ReasonMaxSize = "maxSize"
)

// Current returns the record as it is after the event: NewRecord for an
// update, Record for an insert, nil for a delete.
func (e *Event) Current() Record {
	switch e.Type {
	case OpUpdated:
		return e.NewRecord
	case OpInserted:
		return e.Record
	}
	return nil
}

// SchemaEvent is the body of a message on storeloop.schema.<bucket>: a bucket
// definition as accepted by the store.
type SchemaEvent struct {
	Definition BucketDef `json:"definition"`
	Meta       Meta      `json:"meta"`
}

// DecodeEvent parses an event body: the bodies the store writes without
// reflection, anything else as json.Unmarshal decodes it.
func DecodeEvent(data []byte) (*Event, error) {
	e, ok := decodeEventPlain(data)
	if !ok {
		e = &Event{}
		if err := json.Unmarshal(data, e); err != nil {
			return nil, fmt.Errorf("events: decode event: %w", err)
		}
	}
	if !e.Type.Valid() || !ValidBucketName(e.Bucket) {
		return nil, fmt.Errorf("events: decode event: bad type %q or bucket %q", e.Type, e.Bucket)
	}
	return e, nil
}

// KeyString returns the canonical form of a record key: keys are strings or
// numbers, and "1" and 1 are different keys. Numbers are canonical by value:
// -0 is 0, and 1, 1.0 and 1e0 are one key. It is used for map keys, command
// ids and cursors.
func KeyString(key any) (string, error) {
	switch k := key.(type) {
	case string:
		return "s:" + k, nil
	case float64:
		if math.IsNaN(k) || math.IsInf(k, 0) {
			return "", fmt.Errorf("key %v is not a finite number", k)
		}
		if k == 0 {
			k = 0 // -0 == 0: one key, as the unique index has it
		}
		return "n:" + strconv.FormatFloat(k, 'g', -1, 64), nil
	case int:
		return KeyString(float64(k))
	case int64:
		return KeyString(float64(k))
	case json.Number:
		f, err := k.Float64()
		if err != nil {
			return "", fmt.Errorf("key %q is not a number: %w", k, err)
		}
		return KeyString(f)
	case nil:
		return "", fmt.Errorf("key is missing")
	}
	return "", fmt.Errorf("key must be a string or a number, not %T", key)
}

// ParseKeyString inverts KeyString.
func ParseKeyString(s string) (any, error) {
	if len(s) >= 2 && s[1] == ':' {
		switch s[0] {
		case 's':
			return s[2:], nil
		case 'n':
			return strconv.ParseFloat(s[2:], 64)
		}
	}
	return nil, fmt.Errorf("events: %q is not a key string", s)
}
