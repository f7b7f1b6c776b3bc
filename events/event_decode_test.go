package events

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// storeEvents are bodies as the store writes them (json.Marshal of an Event).
func storeEvents(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range []Event{
		{Type: OpInserted, Bucket: "orders", Key: "o1", Record: Record{"id": "o1", "total": 12.5, "tags": []any{"a", nil, true}},
			Meta: Meta{EventID: "e1", Time: 1764460800000, CorrelationID: "c1", CommandID: "cmd-1"}},
		{Type: OpUpdated, Bucket: "orders", Key: 42.0, OldRecord: Record{"status": "paid"}, NewRecord: Record{"status": "shipped", "n": map[string]any{}},
			Meta: Meta{EventID: "e2", Time: -1, CorrelationID: "c1", CausationID: "e1", Hop: 3, RuleID: "r", RuleVersion: 12, TxID: "tx", TxSize: 2, Seq: math.MaxUint64}},
		{Type: OpDeleted, Bucket: "b", Key: "k\"é\u2028<>&", Record: Record{}, Meta: Meta{EventID: "\xff", Time: math.MaxInt64, CorrelationID: "", Hop: math.MaxInt64, Reason: ReasonTTL}},
		{Type: OpInserted, Bucket: "b", Key: nil, Meta: Meta{Time: math.MinInt64}},
	} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestDecodeEventPlainMatchesEncodingJSON(t *testing.T) {
	bodies := storeEvents(t)
	bodies = append(bodies,
		[]byte(` { "meta" : { "hop" : 0 , "eventId":"x"} , "bucket":"b","type":"inserted","record":null,"key":{"a":[1]} } `),
		[]byte(`{"type":"updated","bucket":"b","key":"k","meta":{"hop":-0,"time":-5,"seq":0}}`),
	)
	for _, body := range bodies {
		got, ok := decodeEventPlain(body)
		if !ok {
			t.Fatalf("decodeEventPlain declined %s", body)
		}
		var want Event
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("decodeEventPlain(%s) =\n%#v\nwant\n%#v", body, *got, want)
		}
	}
}

// Bodies the store does not write are decoded (or refused) exactly as
// encoding/json does: the plain decoder declines them.
func TestDecodeEventLeavesTheRestToEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"type":"inserted","bucket":"b","key":1,"meta":{"hop":1.0}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"time":1e3}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"time":9223372036854775808}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"seq":-1}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"hop":"1"}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"hop":null}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":null}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"eventId":null}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"extra":1,"hop":2}}`,
		`{"type":"inserted","bucket":"b","key":1,"meta":{"hop":1,"hop":2}}`,
		`{"Type":"inserted","bucket":"b","key":1}`,
		`{"type":"inserted","BUCKET":"b","key":1}`,
		`{"type":"inserted","bucket":"b","key":1,"extra":true}`,
		`{"type":"inserted","bucket":"b","record":{"a":1},"record":{"b":2}}`,
		`{"type":null,"bucket":"b"}`,
		`{"type":"inserted","bucket":"b","record":[1]}`,
		`{"type":"inserted","bucket":"b"} x`,
		`[]`,
	} {
		if _, ok := decodeEventPlain([]byte(body)); ok {
			t.Errorf("decodeEventPlain accepted %s", body)
		}
		got, gotErr := DecodeEvent([]byte(body))
		var want Event
		wantErr := json.Unmarshal([]byte(body), &want)
		switch {
		case wantErr != nil:
			if gotErr == nil {
				t.Errorf("DecodeEvent(%s) = %#v, want encoding/json's error %v", body, got, wantErr)
			}
		case !want.Type.Valid() || !ValidBucketName(want.Bucket):
			if gotErr == nil {
				t.Errorf("DecodeEvent(%s) = %#v, want an invalid-event error", body, got)
			}
		case gotErr != nil || !reflect.DeepEqual(*got, want):
			t.Errorf("DecodeEvent(%s) = %#v, %v; want %#v", body, got, gotErr, want)
		}
	}
}

func TestDecodeEventRefusesAnUnknownTypeOrBucket(t *testing.T) {
	for _, body := range []string{`{"type":"nope","bucket":"b","key":1}`, `{"type":"inserted","bucket":"no such","key":1}`, `{"type":"inserted","key":1}`} {
		if ev, err := DecodeEvent([]byte(body)); err == nil {
			t.Errorf("DecodeEvent(%s) = %#v, want an error", body, ev)
		}
	}
}

// Whatever the plain decoder accepts, encoding/json decodes to the same event.
func FuzzDecodeEventPlain(f *testing.F) {
	for _, b := range storeEvents(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"type":"inserted","bucket":"b","key":1,"meta":{"hop":1.0}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeEventPlain(body)
		if !ok {
			return
		}
		var want Event
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("decodeEventPlain accepted %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("decodeEventPlain(%q) = %#v, want %#v", body, *got, want)
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	body := storeEvents(b)[1]
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeEventPlain(body); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e Event
			if err := json.Unmarshal(body, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
