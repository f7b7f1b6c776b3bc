package rulenode

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// roundTripVars is the activation as it was built before eventVars: the
// event marshalled and unmarshalled into a map. eventVars must equal it.
func roundTripVars(ev *events.Event) (map[string]any, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return map[string]any{EventVar: m}, nil
}

// activationBodies are event bodies as the store writes them, covering
// what an activation must reproduce.
var activationBodies = []string{
	// insert: int-like and fractional numbers, nested values, nulls.
	`{"type":"inserted","bucket":"orders","key":"o-1","record":{"_version":1,"_createdAt":1764460800000,"_updatedAt":1764460800000,"total":12.5,"qty":3,"neg":-0.25,"big":1e21,"tiny":5e-324,"zero":-0,"note":null,"ok":true,"tags":["a",1,null,[2.5,{"x":"y"}]],"addr":{"city":"Zürich","geo":{"lat":47.37,"lon":8.54},"lines":[]},"empty":{},"html":"<a&b>\u2028"},"meta":{"eventId":"e1","time":1764460800000,"correlationId":"c1","hop":0,"seq":7}}`,
	// update with a number key and every optional meta field.
	`{"type":"updated","bucket":"stock","key":42,"oldRecord":{"_version":1,"n":1},"newRecord":{"_version":2,"n":2.000001},"meta":{"eventId":"e2","time":1,"correlationId":"c2","causationId":"e1","hop":3,"ruleId":"r","ruleVersion":5,"commandId":"cmd","txId":"tx1","txSize":2,"seq":9007199254740993}}`,
	// delete of a fractional key, meta without optional fields.
	`{"type":"deleted","bucket":"b","key":1.5,"record":{"_version":4},"meta":{"eventId":"e3","time":0,"correlationId":"","hop":0}}`,
	// the store's own delete (an expiry): meta.reason.
	`{"type":"deleted","bucket":"sessions","key":"u1","record":{"_version":1,"token":"t"},"meta":{"eventId":"e4","time":5,"correlationId":"e4","hop":0,"reason":"ttl"}}`,
	// an update carrying empty records (omitted on the wire) and no meta.
	`{"type":"updated","bucket":"b","key":"k","oldRecord":{},"newRecord":{}}`,
}

func TestEventVarsEqualsJSONRoundTrip(t *testing.T) {
	for _, body := range activationBodies {
		ev, err := events.DecodeEvent([]byte(body))
		if err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		assertSameVars(t, ev)
	}
}

// In-process events may hold values a decoder never produces; they must
// still come out as the round trip has them.
func TestEventVarsNormalisesNonJSONValues(t *testing.T) {
	tests := []struct {
		name string
		ev   events.Event
	}{
		{"int values", events.Event{Type: events.OpInserted, Bucket: "b", Key: 7, Record: events.Record{"n": 3, "m": int64(1) << 60, "u": uint8(2)}}},
		{"json.Number key", events.Event{Type: events.OpDeleted, Bucket: "b", Key: json.Number("1.50"), Record: events.Record{"a": 1.0}}},
		{"nil map and slice in a record", events.Event{Type: events.OpInserted, Bucket: "b", Key: "k", Record: events.Record{"m": map[string]any(nil), "s": []any(nil)}}},
		{"invalid UTF-8", events.Event{Type: events.OpInserted, Bucket: "b", Key: "k\xff", Record: events.Record{"s\xfe": "a\xffb"}}},
		{"invalid UTF-8 in type, bucket and meta", events.Event{Type: "in\xffserted", Bucket: "b\xfe\xfe", Key: "k", Record: events.Record{"a": 1.0}, Meta: events.Meta{EventID: "e\xff", CorrelationID: "\xc3", CausationID: "x\xffy", RuleID: "\xff", CommandID: "c\xff", TxID: "t\xff"}}},
		{"typed nested values", events.Event{Type: events.OpInserted, Bucket: "b", Key: "k", Record: events.Record{"l": []string{"x"}, "m": map[string]int{"a": 1}}}},
		{"nil records", events.Event{Type: events.OpUpdated, Bucket: "b", Key: "k"}},
		{"large meta numbers", events.Event{Type: events.OpInserted, Bucket: "b", Key: "k", Record: events.Record{"a": 1.0}, Meta: events.Meta{Time: 1<<62 + 1, Hop: -1, Seq: math.MaxUint64, TxSize: 3, TxID: "t"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertSameVars(t, &tt.ev) })
	}
}

// Values the round trip cannot encode fail as before, with no activation.
func TestEventVarsRejectsNonFiniteNumbers(t *testing.T) {
	for _, ev := range []*events.Event{
		{Type: events.OpInserted, Bucket: "b", Key: "k", Record: events.Record{"x": math.NaN()}},
		{Type: events.OpInserted, Bucket: "b", Key: math.Inf(1), Record: events.Record{"x": 1.0}},
		{Type: events.OpInserted, Bucket: "b", Key: "k", Record: events.Record{"x": []any{math.Inf(-1)}}},
	} {
		if _, want := roundTripVars(ev); want == nil {
			t.Fatalf("round trip of %+v succeeded", ev)
		}
		if got, err := eventVars(ev); err == nil {
			t.Errorf("eventVars(%+v) = %v, want an error", ev, got)
		}
	}
}

func FuzzEventVars(f *testing.F) {
	for _, body := range activationBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := events.DecodeEvent(body)
		if err != nil {
			return
		}
		assertSameVars(t, ev)
	})
}

func assertSameVars(t *testing.T, ev *events.Event) {
	t.Helper()
	want, err := roundTripVars(ev)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	got, err := eventVars(ev)
	if err != nil {
		t.Fatalf("eventVars: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("eventVars differs from the JSON round trip\n got: %#v\nwant: %#v", got, want)
	}
}

// BenchmarkEventVars compares the activation with the round trip it
// replaced, for an update of a small order as the loyalty bench has.
func BenchmarkEventVars(b *testing.B) {
	ev, err := events.DecodeEvent([]byte(`{"type":"updated","bucket":"orders","key":"a1b2c3d4","oldRecord":{"_version":1,"_createdAt":1764460800000,"_updatedAt":1764460800000,"userId":"u17","total":42.5,"status":"new"},"newRecord":{"_version":2,"_createdAt":1764460800000,"_updatedAt":1764460800123,"userId":"u17","total":42.5,"status":"shipped"},"meta":{"eventId":"e2","time":1764460800123,"correlationId":"c2","hop":0,"commandId":"cmd-2","seq":20001}}`))
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name  string
		build func(*events.Event) (map[string]any, error)
	}{{"direct", eventVars}, {"roundtrip", roundTripVars}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.build(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
