package storenode

import (
	"encoding/json"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestEncodeEventMatchesEncodingJSON(t *testing.T) {
	rec := events.Record{"id": 7.0, "name": "<a & b>", "tags": []any{"x", 1.5}, "_version": 1.0}
	newer := events.Record{"id": 7.0, "name": "é", "_version": 2.0}
	full := events.Meta{EventID: "e1", Time: 1700000000123, CorrelationID: "c", CausationID: "k", Hop: 3,
		RuleID: "r", RuleVersion: 4, CommandID: "cmd", TxID: "tx", TxSize: 2, Seq: 9}
	for _, tc := range []struct {
		name    string
		ev      events.Event
		current events.Record
	}{
		{"inserted, minimal meta", events.Event{Type: events.OpInserted, Bucket: "b", Key: 7.0, Record: rec, Meta: events.Meta{EventID: "e", CorrelationID: "e"}}, rec},
		{"updated, full meta", events.Event{Type: events.OpUpdated, Bucket: "b", Key: "k", OldRecord: rec, NewRecord: newer, Meta: full}, newer},
		{"deleted", events.Event{Type: events.OpDeleted, Bucket: "b-2", Key: "quote\"d", Record: rec, Meta: full}, nil},
		{"empty records omitted", events.Event{Type: events.OpInserted, Bucket: "b", Key: nil, Record: events.Record{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(&tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			body, current := encodeEvent(&tc.ev)
			if string(body) != string(want) {
				t.Errorf("body\n got %s\nwant %s", body, want)
			}
			var wantCurrent []byte
			if len(tc.current) > 0 {
				wantCurrent, _ = json.Marshal(tc.current)
			}
			if string(current) != string(wantCurrent) {
				t.Errorf("current = %s, want %s", current, wantCurrent)
			}
		})
	}
}

func TestMarshalReplyMatchesEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		name   string
		result any
		e      *events.Error
	}{
		{"record", events.Record{"a": 1.0, "b": "x"}, nil},
		{"raw record", json.RawMessage(`{"a":1}`), nil},
		{"struct", events.DeleteResult{Deleted: true}, nil},
		{"nil result", nil, nil},
		{"error", nil, events.Errorf(events.CodeConflict, "taken")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := events.Reply{Error: tc.e}
			if tc.e == nil {
				r.Result, _ = json.Marshal(tc.result)
			}
			want, _ := json.Marshal(r)
			if got := marshalReply(tc.result, tc.e); string(got) != string(want) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestMarshalReplyUnencodableResultIsInternal(t *testing.T) {
	var r events.Reply
	if err := json.Unmarshal(marshalReply(events.Record{"f": make(chan int)}, nil), &r); err != nil {
		t.Fatal(err)
	}
	if r.Error == nil || r.Error.Code != events.CodeInternal || r.Result != nil {
		t.Fatalf("reply = %+v, want an internal error only", r)
	}
}
