package storenode

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestDecodeRequestAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
		into func() any
		want any
	}{
		{"empty body is {}", "", func() any { return &events.InsertRequest{} }, &events.InsertRequest{}},
		{"blank body is {}", " \n\t", func() any { return &events.BucketsRequest{} }, &events.BucketsRequest{}},
		{"insert with float64 numbers", `{"bucket":"orders","record":{"total":25,"n":[1,{"x":2.5}]}}`,
			func() any { return &events.InsertRequest{} },
			&events.InsertRequest{Bucket: "orders", Record: events.Record{"total": 25.0, "n": []any{1.0, map[string]any{"x": 2.5}}}}},
		{"numeric key is float64", `{"bucket":"b","key":1}`, func() any { return &events.GetRequest{} }, &events.GetRequest{Bucket: "b", Key: 1.0}},
		{"update with every field", `{"bucket":"b","key":"k","changes":{"a":null},"increment":{"n":-2},"expectVersion":3}`,
			func() any { return &events.UpdateRequest{} },
			&events.UpdateRequest{Bucket: "b", Key: "k", Changes: events.Record{"a": nil}, Increment: map[string]float64{"n": -2}, ExpectVersion: schemaPtr(int64(3))}},
		{"surrounding whitespace", "\n {\"bucket\":\"b\"} \n", func() any { return &events.GetRequest{} }, &events.GetRequest{Bucket: "b"}},
		{"tx", `{"ops":[{"op":"delete","bucket":"b","key":2}],"reads":[{"bucket":"b","key":2,"version":0}]}`,
			func() any { return &events.TxRequest{} },
			&events.TxRequest{Ops: []events.TxOp{{Op: "delete", Bucket: "b", Key: 2.0}}, Reads: []events.TxRead{{Bucket: "b", Key: 2.0}}}},
		{"exactly the size cap", `{"bucket":"b"}` + strings.Repeat(" ", maxRequestBytes-len(`{"bucket":"b"}`)),
			func() any { return &events.GetRequest{} }, &events.GetRequest{Bucket: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.into()
			if e := decodeRequest([]byte(tt.body), v); e != nil {
				t.Fatalf("decodeRequest: %v", e)
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("decoded %#v, want %#v", v, tt.want)
			}
		})
	}
}

func TestDecodeRequestRejects(t *testing.T) {
	tests := []struct {
		name string
		body string
		into any
		want string // the exact message
	}{
		{"unknown field", `{"bucket":"b","foo":1}`, &events.GetRequest{}, `unknown field "foo"`},
		{"unknown field in a tx op", `{"ops":[{"op":"insert","bucket":"b","bogus":true}]}`, &events.TxRequest{}, `unknown field "bogus"`},
		{"array for record", `{"bucket":"b","record":[]}`, &events.InsertRequest{}, "field record: expected object, got array"},
		{"number for bucket", `{"bucket":1}`, &events.GetRequest{}, "field bucket: expected string, got number"},
		{"fractional expectVersion", `{"bucket":"b","key":1,"expectVersion":1.5}`, &events.UpdateRequest{}, "field expectVersion: expected integer, got number 1.5"},
		{"string increment", `{"bucket":"b","key":1,"increment":{"n":"1"}}`, &events.UpdateRequest{}, "field increment: expected number, got string"},
		{"nested wrong type", `{"ops":[{"op":"insert","bucket":"b","record":"x"}]}`, &events.TxRequest{}, "field ops.record: expected object, got string"},
		{"number out of range", `{"bucket":"b","key":1e400}`, &events.GetRequest{}, "field key: expected number, got number 1e400"},
		{"second value", `{"bucket":"b"} {"bucket":"c"}`, &events.GetRequest{}, "unexpected data after the request object"},
		{"trailing garbage", `{"bucket":"b"}x`, &events.GetRequest{}, "unexpected data after the request object"},
		{"trailing brace", `{"bucket":"b"}}`, &events.GetRequest{}, "unexpected data after the request object"},
		{"truncated", `{"bucket":`, &events.GetRequest{}, "malformed JSON: unexpected end of input"},
		{"syntax error", "\n " + `{"bucket" "b"}`, &events.GetRequest{}, "malformed JSON at byte 13: invalid character '\"' after object key"},
		{"array body", `[]`, &events.GetRequest{}, "request body must be a JSON object"},
		{"null body", `null`, &events.GetRequest{}, "request body must be a JSON object"},
		{"string body", `"x"`, &events.GetRequest{}, "request body must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := decodeRequest([]byte(tt.body), tt.into)
			if e == nil {
				t.Fatalf("decodeRequest accepted %q", tt.body)
			}
			if !errors.Is(e, events.ErrBadRequest) || e.Message != tt.want {
				t.Fatalf("err = %v\nwant bad_request: %s", e, tt.want)
			}
		})
	}
}

func TestDecodeRequestTooLarge(t *testing.T) {
	e := decodeRequest([]byte(`{"bucket":"b"}`+strings.Repeat(" ", maxRequestBytes)), &events.GetRequest{})
	if !errors.Is(e, events.ErrTooLarge) || e.Message != "request too large: 1048590 bytes, at most 1048576" {
		t.Fatalf("err = %v, want too_large naming the cap", e)
	}
}

func TestDecodeRequestNonPointerIsInternal(t *testing.T) {
	e := decodeRequest([]byte(`{}`), events.GetRequest{})
	if !errors.Is(e, events.ErrInternal) {
		t.Fatalf("err = %v, want internal", e)
	}
}

func TestDecodeRequestLeavesInputAlone(t *testing.T) {
	body := []byte(` {"bucket":"b","record":{"a":1}} `)
	orig := bytes.Clone(body)
	var req events.InsertRequest
	if e := decodeRequest(body, &req); e != nil {
		t.Fatal(e)
	}
	if !bytes.Equal(body, orig) {
		t.Fatalf("body changed to %q", body)
	}
}
