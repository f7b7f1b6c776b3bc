package storenode

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// checkBatchPlainMatchesStrict fails when decodeBatchPlain accepts data and
// decodes something other than encoding/json's strict decoding, or
// declines it having changed the request. It reports whether it accepted.
func checkBatchPlainMatchesStrict(t *testing.T, data []byte) bool {
	t.Helper()
	var fast, strict events.BatchRequest
	if !decodeBatchPlain(data, &fast) {
		if !reflect.DeepEqual(fast, events.BatchRequest{}) {
			t.Fatalf("decodeBatchPlain(%q) declined but changed the request to %#v", data, fast)
		}
		return false
	}
	if e := decodeStrict(data, &strict); e != nil {
		t.Fatalf("decodeBatchPlain accepted %q, encoding/json rejects it: %v", data, e)
	}
	if !reflect.DeepEqual(fast, strict) {
		t.Fatalf("decodeBatchPlain(%q) = %#v, encoding/json %#v", data, fast, strict)
	}
	return true
}

// batchPlainCases are bodies and whether the fast path takes them; they
// seed the fuzzer too.
var batchPlainCases = []struct {
	name string
	body string
	fast bool
}{
	{"rule writes", `{"commands":[` +
		`{"cmd":"upsert","commandId":"set/r/7/0","correlationId":"c","causationId":"e","hop":1,"rule":"r","ruleVersion":2,"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","bucket":"loyalty","key":"u1","record":{"userId":"u1"},"increment":{"points":10}},` +
		`{"cmd":"update","commandId":"x","bucket":"orders","key":12,"changes":{"status":"paid","n":null},"expectVersion":3},` +
		`{"cmd":"insert","bucket":"b","record":{"a":[1,{"b":"\u00e9"}]}},` +
		`{"cmd":"delete","bucket":"b","key":null,"tracestate":"k=v"}]}`, true},
	{"empty commands", `{"commands":[]}`, true},
	{"white space", " {\n \"commands\" : [ { \"cmd\" : \"insert\" } ] } ", true},
	{"negative hop and version", `{"commands":[{"cmd":"insert","hop":-1,"ruleVersion":-2,"expectVersion":-0}]}`, true},
	{"an unknown cmd is the store's to refuse", `{"commands":[{"cmd":"get","bucket":"b","key":1}]}`, true},
	{"tx falls back", `{"commands":[{"cmd":"tx","ops":[{"op":"delete","bucket":"b","key":1}]}]}`, false},
	{"no commands falls back", `{}`, false},
	{"null commands falls back", `{"commands":null}`, false},
	{"unknown field falls back", `{"commands":[{"cmd":"insert","bogus":1}]}`, false},
	{"unknown top field falls back", `{"commands":[],"x":1}`, false},
	{"other case falls back", `{"commands":[{"Cmd":"insert"}]}`, false},
	{"duplicate field falls back", `{"commands":[{"cmd":"insert","cmd":"update"}]}`, false},
	{"duplicate commands falls back", `{"commands":[],"commands":[]}`, false},
	{"null string falls back", `{"commands":[{"cmd":null}]}`, false},
	{"null record falls back", `{"commands":[{"cmd":"insert","record":null}]}`, false},
	{"float hop falls back", `{"commands":[{"cmd":"insert","hop":1.0}]}`, false},
	{"exponent version falls back", `{"commands":[{"cmd":"update","expectVersion":1e3}]}`, false},
	{"huge hop falls back", `{"commands":[{"cmd":"insert","hop":99999999999999999999}]}`, false},
	{"string in increment falls back", `{"commands":[{"cmd":"upsert","increment":{"n":"1"}}]}`, false},
	{"record not an object falls back", `{"commands":[{"cmd":"insert","record":[1]}]}`, false},
	{"command not an object falls back", `{"commands":[1]}`, false},
	{"trailing data falls back", `{"commands":[]} x`, false},
	{"malformed falls back", `{"commands":[{"cmd":"insert"}`, false},
}

func TestDecodeBatchPlain(t *testing.T) {
	for _, tc := range batchPlainCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkBatchPlainMatchesStrict(t, []byte(tc.body)); got != tc.fast {
				t.Fatalf("fast path taken: %v, want %v", got, tc.fast)
			}
		})
	}
}

// The batches the Go client sends (json.Marshal of an events.BatchRequest)
// take the fast path.
func TestDecodeBatchPlainTakesClientBatches(t *testing.T) {
	hop := 2
	req := events.BatchRequest{Commands: []events.BatchCommand{
		{Cmd: events.CmdUpsert, CommandID: "s/r/1/0", CorrelationID: "c", CausationID: "e", Hop: &hop, Rule: "r", RuleVersion: 1,
			Bucket: "loyalty", Key: "u1", Record: events.Record{"userId": "u1"}, Increment: map[string]float64{"points": 12.5}},
		{Cmd: events.CmdUpdate, CommandID: "s/r/2/0", Bucket: "orders", Key: 7.0, Changes: events.Record{"s": "<&>"}, ExpectVersion: new(int64(4))},
		{Cmd: events.CmdDelete, CommandID: "s/r/3/0", Bucket: "orders", Key: "k"},
	}}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if !checkBatchPlainMatchesStrict(t, body) {
		t.Fatalf("a client batch fell back: %s", body)
	}
}

// FuzzDecodeBatchPlain checks that whatever the fast path decodes,
// encoding/json accepts and decodes the same.
func FuzzDecodeBatchPlain(f *testing.F) {
	for _, tc := range batchPlainCases {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkBatchPlainMatchesStrict(t, data) })
}
