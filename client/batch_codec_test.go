package client

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestEncodeBatchRequestMatchesEncodingJSON(t *testing.T) {
	hop, neg := 3, -1
	for _, tc := range []struct {
		name string
		req  events.BatchRequest
	}{
		{"nil commands", events.BatchRequest{}},
		{"no commands", events.BatchRequest{Commands: []events.BatchCommand{}}},
		{"rule writes", events.BatchRequest{Commands: []events.BatchCommand{
			{Cmd: events.CmdUpsert, CommandID: "set/r/1/0", CorrelationID: "c", CausationID: "e", Hop: &hop, Rule: "r", RuleVersion: 2,
				TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "k=v",
				Bucket: "loyalty", Key: "u1", Record: events.Record{"userId": "u1"}, Increment: map[string]float64{"points": 10, "n": 1e21}},
			{Cmd: events.CmdUpdate, CommandID: "x", Bucket: "orders", Key: 12.0, Changes: events.Record{"s": "<é>", "n": nil}, ExpectVersion: new(int64(0))},
			{Cmd: events.CmdInsert, Bucket: "b", Record: events.Record{"i": 3, "f": float32(1.5), "m": map[string]int{"z": 1}}},
			{Cmd: events.CmdDelete, Bucket: "b", Key: 7, Hop: &neg},
		}}},
		{"empty maps left out", events.BatchRequest{Commands: []events.BatchCommand{
			{Cmd: events.CmdUpsert, Bucket: "b", Key: "k", Record: events.Record{}, Changes: events.Record{}, Increment: map[string]float64{}},
		}}},
		{"a typed nil key", events.BatchRequest{Commands: []events.BatchCommand{{Cmd: events.CmdDelete, Key: map[string]any(nil)}}}},
		{"tx through encoding/json", events.BatchRequest{Commands: []events.BatchCommand{
			{Cmd: events.CmdInsert, Bucket: "b"},
			{Cmd: events.CmdTx, CommandID: "t", Ops: []events.TxOp{{Op: events.CmdDelete, Bucket: "b", Key: 1.0}}, Reads: []events.TxRead{{Bucket: "b", Key: 2.0, Version: 3}}},
		}}},
		{"an empty command", events.BatchRequest{Commands: []events.BatchCommand{{}}}},
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
	bad := events.BatchRequest{Commands: []events.BatchCommand{{Cmd: events.CmdUpsert, Increment: map[string]float64{"n": math.Inf(1)}}}}
	if got, err := encodeRequest(bad); err == nil {
		t.Fatalf("encodeRequest of an infinite increment = %s, want json.Marshal's error", got)
	}
}

// checkBatchReplyMatchesEncodingJSON fails when decodeBatchReply accepts
// data and decodes something other than encoding/json, or declines it
// having changed the result. It reports whether it accepted.
func checkBatchReplyMatchesEncodingJSON(t *testing.T, data []byte) bool {
	t.Helper()
	var fast events.BatchResult
	if !decodeBatchReply(data, &fast) {
		if fast.Results != nil {
			t.Fatalf("decodeBatchReply(%q) declined but set %#v", data, fast)
		}
		return false
	}
	var slow struct {
		Result events.BatchResult `json:"result"`
	}
	if err := json.Unmarshal(data, &slow); err != nil {
		t.Fatalf("decodeBatchReply accepted %q, encoding/json rejects it: %v", data, err)
	}
	if !reflect.DeepEqual(fast, slow.Result) {
		t.Fatalf("decodeBatchReply(%q) = %#v, encoding/json %#v", data, fast, slow.Result)
	}
	return true
}

var batchReplyCases = []struct {
	name  string
	reply string
	fast  bool
}{
	{"results", `{"result":{"results":[{"result":{"id":1,"s":"\u00e9"}},{"result":{"deleted":false}},{"result":null}]}}`, true},
	{"white space", ` { "result" : { "results" : [ { "result" : [1, 2] } ] } } `, true},
	{"no results", `{"result":{"results":[]}}`, true},
	{"an error among them falls back", `{"result":{"results":[{"result":{}},{"error":{"code":"not_found","message":"m"}}]}}`, false},
	{"a batch error falls back", `{"error":{"code":"too_large","message":"m"}}`, false},
	{"an empty entry falls back", `{"result":{"results":[{}]}}`, false},
	{"a repeated result falls back", `{"result":{"results":[{"result":1,"result":2}]}}`, false},
	{"unknown fields fall back", `{"result":{"results":[],"x":1}}`, false},
	{"null results fall back", `{"result":{"results":null}}`, false},
	{"malformed falls back", `{"result":{"results":[{"result":1}]}`, false},
}

func TestDecodeBatchReply(t *testing.T) {
	for _, tc := range batchReplyCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkBatchReplyMatchesEncodingJSON(t, []byte(tc.reply)); got != tc.fast {
				t.Fatalf("fast path taken: %v, want %v", got, tc.fast)
			}
		})
	}
}

// FuzzDecodeBatchReply checks that whatever the fast path decodes,
// encoding/json decodes the same.
func FuzzDecodeBatchReply(f *testing.F) {
	for _, tc := range batchReplyCases {
		f.Add([]byte(tc.reply))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkBatchReplyMatchesEncodingJSON(t, data) })
}
