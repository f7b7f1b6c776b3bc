package client

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestEncodeRequestMatchesEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  any
	}{
		{"insert", events.InsertRequest{Bucket: "orders", Record: events.Record{"b": 2.0, "a": "<x>", "n": []any{true, nil}}}},
		{"insert without record", events.InsertRequest{Bucket: "orders"}},
		{"insert with Go types", events.InsertRequest{Bucket: "b", Record: events.Record{"i": 3, "f": float32(1.5), "m": map[string]int{"z": 1}}}},
		{"upsert", events.UpsertRequest{Bucket: "loyalty", Key: "u1", Record: events.Record{"userId": "u1"}, Increment: map[string]float64{"points": 10, "count": 1}}},
		{"upsert without record or increment", events.UpsertRequest{Bucket: "b", Key: 2.5}},
		{"upsert with empty maps", events.UpsertRequest{Bucket: "b", Key: "k", Record: events.Record{}, Increment: map[string]float64{}}},
		{"upsert with an int key", events.UpsertRequest{Bucket: "b", Key: 7, Increment: map[string]float64{"n": -0.5}}},
		{"update", events.UpdateRequest{Bucket: "orders", Key: "o1", Changes: events.Record{"status": "shipped"}, Increment: map[string]float64{"n": 1e21}, ExpectVersion: new(int64(3))}},
		{"update without options", events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"s": "é"}}},
		{"update with version 0", events.UpdateRequest{Bucket: "orders", Key: nil, ExpectVersion: new(int64(0))}},
		{"other request", events.GetRequest{Bucket: "b", Key: 1.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeRequest(tc.req)
			if err != nil || string(got) != string(want) {
				t.Fatalf("encodeRequest = %s, %v; want %s", got, err, want)
			}
		})
	}
}

func TestDecodeReplyRecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reply   string
		want    events.Record
		wantErr events.Code
	}{
		{"record", `{"result":{"id":1,"name":"x","tags":["a"]}}`, events.Record{"id": 1.0, "name": "x", "tags": []any{"a"}}, ""},
		{"null result", `{"result":null}`, nil, ""},
		{"error", `{"error":{"code":"conflict","message":"taken"}}`, nil, events.CodeConflict},
		{"escaped", `{"result":{"s":"\u00e9\n"}}`, events.Record{"s": "é\n"}, ""},
		{"not an object", `{"result":[1]}`, nil, events.CodeInternal},
		{"malformed", `{"result":`, nil, events.CodeInternal},
		// Issue 8 item 6: a stream capturing store.> answered an insert with
		// its PubAck, and the CLI printed null with exit 0.
		{"a JetStream PubAck", `{"stream":"HIJACK","seq":5}`, nil, events.CodeInternal},
		{"empty object", `{}`, nil, events.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got events.Record
			err := decodeReply([]byte(tc.reply), &got)
			if tc.wantErr != "" {
				var e *events.Error
				if !errors.As(err, &e) || e.Code != tc.wantErr {
					t.Fatalf("err = %v, want code %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("record = %#v, want %#v", got, tc.want)
			}
		})
	}
}

// A reply with neither result nor error is an error whatever the caller
// decodes into, nothing included.
func TestDecodeReplyNeitherResultNorError(t *testing.T) {
	var n int
	for _, into := range []any{nil, &n, &struct{ Deleted bool }{}} {
		err := decodeReply([]byte(`{"stream":"HIJACK","seq":5}`), into)
		if !errors.Is(err, events.ErrInternal) || err.Error() != `internal: not a store reply (neither result nor error): {"stream":"HIJACK","seq":5}` {
			t.Fatalf("decodeReply into %T = %v, want internal naming the reply", into, err)
		}
	}
	if err := decodeReply([]byte(`{"result":null}`), nil); err != nil {
		t.Fatalf("a null result is a result: %v", err)
	}
}

// What json.Marshal cannot encode, the fast path refuses too.
func TestEncodeRequestRefusesWhatEncodingJSONRefuses(t *testing.T) {
	nan := math.NaN()
	for _, req := range []any{
		events.UpsertRequest{Bucket: "b", Key: "k", Increment: map[string]float64{"n": nan}},
		events.UpdateRequest{Bucket: "b", Key: nan},
		events.InsertRequest{Bucket: "b", Record: events.Record{"c": make(chan int)}},
	} {
		if _, err := json.Marshal(req); err == nil {
			t.Fatalf("json.Marshal(%#v) succeeded", req)
		}
		if got, err := encodeRequest(req); err == nil {
			t.Fatalf("encodeRequest(%#v) = %s, want an error", req, got)
		}
	}
}
