package storenode

import (
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// plainTargets are the request types decodePlain handles.
var plainTargets = []func() any{
	func() any { return &events.InsertRequest{} },
	func() any { return &events.GetRequest{} },
	func() any { return &events.DeleteRequest{} },
	func() any { return &events.UpsertRequest{} },
	func() any { return &events.UpdateRequest{} },
}

// checkPlainMatchesStrict fails when decodePlain accepts data into a request
// type and decodes something other than encoding/json's strict decoding.
func checkPlainMatchesStrict(t *testing.T, data []byte) (accepted int) {
	t.Helper()
	for _, into := range plainTargets {
		fast, strict := into(), into()
		if !decodePlain(data, fast) {
			if !reflect.DeepEqual(fast, into()) {
				t.Fatalf("decodePlain(%q) into %T declined but changed it to %#v", data, fast, fast)
			}
			continue
		}
		accepted++
		if e := decodeStrict(data, strict); e != nil {
			t.Fatalf("decodePlain accepted %q into %T, encoding/json rejects it: %v", data, fast, e)
		}
		if !reflect.DeepEqual(fast, strict) {
			t.Fatalf("decodePlain(%q) = %#v, encoding/json %#v", data, fast, strict)
		}
	}
	return accepted
}

func TestDecodePlain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		accepted int // how many of plainTargets take the fast path
	}{
		{"insert", `{"bucket":"orders","record":{"total":25,"tags":["a"],"x":{"y":null}}}`, 2}, // insert, upsert
		{"keyed", `{"bucket":"b","key":1}`, 4},                                                 // all but insert
		{"update", `{"bucket":"b","key":"k","changes":{"a":null}}`, 1},
		{"upsert", `{"key":"k","record":{},"bucket":"b"}`, 1},
		{"empty", `{}`, 5},
		{"unknown field falls back", `{"bucket":"b","foo":1}`, 0},
		{"other case falls back", `{"Bucket":"b"}`, 0},
		{"duplicate falls back", `{"bucket":"b","bucket":"c"}`, 0},
		{"null bucket falls back", `{"bucket":null}`, 0},
		{"null record falls back", `{"bucket":"b","record":null}`, 0},
		{"increment", `{"bucket":"b","key":1,"increment":{"n":1,"m":-2.5e-3}}`, 2}, // upsert, update
		{"upsert with record and increment", `{"bucket":"loyalty","key":"u1","record":{"userId":"u1"},"increment":{"points":10}}`, 1},
		{"empty increment", `{"bucket":"b","key":1,"increment":{}}`, 2},
		{"null increment falls back", `{"bucket":"b","key":1,"increment":null}`, 0},
		{"null in increment falls back", `{"bucket":"b","key":1,"increment":{"n":null}}`, 0},
		{"string in increment falls back", `{"bucket":"b","key":1,"increment":{"n":"1"}}`, 0},
		{"increment not an object falls back", `{"bucket":"b","key":1,"increment":[1]}`, 0},
		{"expectVersion falls back", `{"bucket":"b","key":1,"expectVersion":2}`, 0},
		{"wrong type falls back", `{"bucket":1}`, 0},
		{"trailing data falls back", `{"bucket":"b"} x`, 0},
		{"array falls back", `[]`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkPlainMatchesStrict(t, []byte(tc.body)); got != tc.accepted {
				t.Fatalf("fast path taken for %d request types, want %d", got, tc.accepted)
			}
		})
	}
}

// FuzzDecodePlain checks that whatever the fast path decodes, encoding/json
// accepts and decodes the same.
func FuzzDecodePlain(f *testing.F) {
	for _, s := range []string{`{"bucket":"b","record":{"a":1}}`, `{"bucket":"b","key":"k","changes":{"a":null}}`, `{"key":[1,{"z":"\u00e9"}]}`, `{"bucket":"b","key":1,"bogus":2}`, `{"bucket":"b","key":1,"increment":{"n":1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkPlainMatchesStrict(t, data) })
}
