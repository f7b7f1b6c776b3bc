package projections

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// storeBodies are event bodies as the store writes them.
var storeBodies = []string{
	`{"type":"inserted","bucket":"orders","key":1,"record":{"_createdAt":1796006091219,"_updatedAt":1796006091219,"_version":1,"id":1,"status":"pending","tags":["a",{"b":null}],"total":25.5,"userId":"u1"},"meta":{"eventId":"e1","time":1796006091219,"correlationId":"e1","causationId":"c1","hop":0,"commandId":"c1"}}`,
	`{"type":"updated","bucket":"orders","key":"k","oldRecord":{"_version":1,"id":"k"},"newRecord":{"_version":2,"id":"k","ok":true},"meta":{"eventId":"e2","time":1,"correlationId":"e1","hop":3,"ruleId":"r","txId":"t","txSize":2}}`,
	`{"type":"deleted","bucket":"a-b_c","key":-0.5,"record":{"x":null},"meta":{"eventId":"e3","time":-5,"correlationId":"e3","hop":0,"seq":9}}`,
	`{"type":"inserted","bucket":"b","key":1,"record":null,"meta":{"eventId":"","time":0,"correlationId":"","hop":0}}`,
}

// otherBodies leave the fast path: encoding/json decides them.
var otherBodies = []string{
	`{"Type":"inserted","bucket":"orders","key":1}`,                       // another case
	`{"type":"inserted","bucket":"orders","key":1,"extra":1}`,             // unknown field
	`{"type":"inserted","type":"deleted","bucket":"orders","key":1}`,      // repeated
	`{"type":"inserted","bucket":"orders","key":1,"meta":{"time":1.5}}`,   // not an integer
	`{"type":"inserted","bucket":"orders","key":1,"meta":{"hop":"1"}}`,    // wrong type
	`{"type":"inserted","bucket":"orders","key":1,"meta":null}`,           // null meta
	`{"type":"inserted","bucket":"orders","key":1,"record":[1]}`,          // not an object
	`{"type":"inserted","bucket":"orders","key":1,"meta":{"time":1e300}}`, // out of int64
	`{"type":"inserted","bucket":"orders","key":1,"meta":{"seq":-1}}`,     // negative seq
	`{"type":"inserted","bucket":"orders","key":1} x`,                     // trailing data
	`{"type":"inserted","bucket":"orders","key":1,"meta":{"eventId":"a","eventId":"b"}}`,
}

// TestDecodeEventMatchesJSON: the fast decoder takes the store's bodies
// and decodes them as encoding/json does, and leaves everything else.
func TestDecodeEventMatchesJSON(t *testing.T) {
	for _, body := range storeBodies {
		got, ok := decodeEvent([]byte(body))
		if !ok {
			t.Fatalf("left to encoding/json: %s", body)
		}
		var want events.Event
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", body, *got, want)
		}
	}
	for _, body := range otherBodies {
		if _, ok := decodeEvent([]byte(body)); ok {
			t.Errorf("decoded, want left to encoding/json: %s", body)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, b := range append(storeBodies, otherBodies...) {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeEvent(body)
		if !ok {
			return
		}
		var want events.Event
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("decoded what encoding/json refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", body, *got, want)
		}
	})
}

// BenchmarkDecodeEvent: a store-written insert, decoded by the replay's
// decoder and by encoding/json.
func BenchmarkDecodeEvent(b *testing.B) {
	body := []byte(storeBodies[0])
	b.Run("replay", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeMessage("bucket.orders.inserted", body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.DecodeEvent(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
