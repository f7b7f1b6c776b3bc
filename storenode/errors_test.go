package storenode_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// TestErrors sends every kind of bad command and checks its error code, its
// issues, and that it changed nothing: no event, the same readable state.
func TestErrors(t *testing.T) {
	st := storetest.StartStore(t, storenode.WithMaxRecordBytes(300))
	nc := st.Conn
	define(t, nc, ordersDef(), usersDef())
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, nil)
	var u2 events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": "A", "email": "taken@example.com"}}, nil)
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": "B", "email": "b@example.com"}}, &u2)
	long := strings.Repeat("x", 300)

	type issue struct{ field, code string }
	cases := []struct {
		name   string
		cmd    string
		req    any // marshalled unless []byte
		hdr    []string
		code   events.Code
		issues []issue // field and code of each issue, in order; nil: not checked
	}{
		{name: "validation lists every issue", cmd: events.CmdInsert,
			req:  events.InsertRequest{Bucket: "orders", Record: events.Record{"total": -1.0, "qty": 0.0, "status": "bogus", "extra": 1.0, "_version": 3.0}},
			code: events.CodeValidation,
			issues: []issue{{"_version", "reserved_field"}, {"extra", "unknown_field"}, {"qty", "min"}, {"status", "enum"},
				{"total", "min"}, {"userId", "required"}}},
		{name: "validation of lengths, formats and types", cmd: events.CmdInsert,
			req:    events.InsertRequest{Bucket: "users", Record: events.Record{"name": "", "email": "not-an-email", "role": "root", "tags": "x"}},
			code:   events.CodeValidation,
			issues: []issue{{"email", "format"}, {"name", "minLength"}, {"role", "enum"}, {"tags", "type"}}},
		{name: "validation of update changes", cmd: events.CmdUpdate,
			req:    events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"id": 2.0, "_version": 9.0, "nope": 1.0}},
			code:   events.CodeValidation,
			issues: []issue{{"_version", "reserved_field"}, {"id", "immutable_key"}, {"nope", "unknown_field"}}},
		{name: "validation of the merged record", cmd: events.CmdUpdate,
			req:  events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"userId": nil}, Increment: map[string]float64{"total": -5}},
			code: events.CodeValidation, issues: []issue{{"total", "min"}, {"userId", "required"}}},
		{name: "not_found", cmd: events.CmdUpdate, req: events.UpdateRequest{Bucket: "orders", Key: 42.0, Changes: events.Record{"status": "paid"}},
			code: events.CodeNotFound},
		{name: "conflict on insert", cmd: events.CmdInsert, req: events.InsertRequest{Bucket: "orders", Record: events.Record{"id": 1.0, "userId": "v", "total": 2.0}},
			code: events.CodeConflict},
		{name: "conflict on expectVersion", cmd: events.CmdUpdate, req: events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"status": "paid"}, ExpectVersion: ptr(int64(7))},
			code: events.CodeConflict},
		{name: "unique on insert", cmd: events.CmdInsert, req: events.InsertRequest{Bucket: "users", Record: events.Record{"name": "C", "email": "taken@example.com"}},
			code: events.CodeUnique, issues: []issue{{"email", "unique"}}},
		{name: "unique on update", cmd: events.CmdUpdate, req: events.UpdateRequest{Bucket: "users", Key: u2["id"], Changes: events.Record{"email": "taken@example.com"}},
			code: events.CodeUnique, issues: []issue{{"email", "unique"}}},
		{name: "bucket_not_found on a write", cmd: events.CmdInsert, req: events.InsertRequest{Bucket: "nope", Record: events.Record{"a": 1.0}}, code: events.CodeBucketNotFound},
		{name: "bucket_not_found on a read", cmd: events.CmdQuery, req: events.QueryRequest{Bucket: "nope"}, code: events.CodeBucketNotFound},
		{name: "bucket_exists", cmd: events.CmdDefine, req: func() events.BucketDef { d := ordersDef(); d.Indexes = nil; return d }(), code: events.CodeBucketExists},
		{name: "invalid definition", cmd: events.CmdDefine, req: events.BucketDef{Bucket: "x", Key: "id", Schema: map[string]events.FieldDef{"n": {Type: "int"}}},
			code: events.CodeBadRequest, issues: []issue{{"key", "key"}, {"schema.n", "type"}}},
		{name: "malformed JSON", cmd: events.CmdInsert, req: []byte(`{"bucket":"orders","record":{`), code: events.CodeBadRequest},
		{name: "not an object", cmd: events.CmdGet, req: []byte(`["orders",1]`), code: events.CodeBadRequest},
		{name: "unknown request field", cmd: events.CmdInsert, req: []byte(`{"bucket":"orders","record":{"userId":"u","total":1},"upsert":true}`), code: events.CodeBadRequest},
		{name: "wrong type of bucket", cmd: events.CmdGet, req: []byte(`{"bucket":1,"key":1}`), code: events.CodeBadRequest},
		{name: "wrong type of increment", cmd: events.CmdUpdate, req: []byte(`{"bucket":"orders","key":1,"increment":{"total":"1"}}`), code: events.CodeBadRequest},
		{name: "wrong type of expectVersion", cmd: events.CmdDelete, req: []byte(`{"bucket":"orders","key":1,"expectVersion":"1"}`), code: events.CodeBadRequest},
		{name: "wrong type of limit", cmd: events.CmdQuery, req: []byte(`{"bucket":"orders","limit":"ten"}`), code: events.CodeBadRequest},
		{name: "bucket name with a dot", cmd: events.CmdInsert, req: events.InsertRequest{Bucket: "a.b", Record: events.Record{"a": 1.0}}, code: events.CodeBadRequest},
		{name: "bucket name with a wildcard", cmd: events.CmdGet, req: events.GetRequest{Bucket: "a*", Key: 1.0}, code: events.CodeBadRequest},
		{name: "bucket name >", cmd: events.CmdDefine, req: events.BucketDef{Bucket: ">", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: "string"}}}, code: events.CodeBadRequest},
		{name: "string key for a number key", cmd: events.CmdGet, req: events.GetRequest{Bucket: "orders", Key: "1"}, code: events.CodeBadRequest},
		{name: "object key", cmd: events.CmdUpdate, req: events.UpdateRequest{Bucket: "orders", Key: map[string]any{"id": 1.0}, Changes: events.Record{"status": "paid"}}, code: events.CodeBadRequest},
		{name: "missing key", cmd: events.CmdDelete, req: events.DeleteRequest{Bucket: "orders"}, code: events.CodeBadRequest},
		{name: "insert without a record", cmd: events.CmdInsert, req: events.InsertRequest{Bucket: "orders"}, code: events.CodeBadRequest},
		{name: "bad where", cmd: events.CmdCount, req: events.CountRequest{Bucket: "orders", Where: events.Where{"total": map[string]any{"$near": 1.0}}}, code: events.CodeBadRequest},
		{name: "unknown aggregate", cmd: events.CmdAggregate, req: events.AggregateRequest{Bucket: "orders", Fn: "median", Field: "total"}, code: events.CodeBadRequest},
		{name: "query limit too high", cmd: events.CmdQuery, req: events.QueryRequest{Bucket: "orders", Limit: 1 << 20}, code: events.CodeBadRequest},
		{name: "empty tx", cmd: events.CmdTx, req: events.TxRequest{}, code: events.CodeBadRequest},
		{name: "record over the size limit", cmd: events.CmdInsert, req: events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0, "sku": long}}, code: events.CodeValidation},
		{name: "update over the size limit", cmd: events.CmdUpdate, req: events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"sku": long}}, code: events.CodeValidation},
		{name: "hop not a number", cmd: events.CmdInsert, req: events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}},
			hdr: []string{events.HeaderHop, "three"}, code: events.CodeBadRequest},
		{name: "negative hop", cmd: events.CmdUpsert, req: events.UpsertRequest{Bucket: "orders", Key: 1.0, Increment: map[string]float64{"total": 1}},
			hdr: []string{events.HeaderHop, "-1"}, code: events.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, seq := snapshot(t, nc), lastSeq(t, nc)
			e := call(t, nc, tc.cmd, tc.req, nil, tc.hdr...)
			wantCode(t, e, tc.code)
			if e.Message == "" {
				t.Errorf("error without a message: %+v", e)
			}
			if tc.issues != nil {
				var got []issue
				for _, is := range e.Issues {
					got = append(got, issue{is.Field, is.Code})
					if is.Message == "" {
						t.Errorf("issue without a message: %+v", is)
					}
				}
				if !reflect.DeepEqual(got, tc.issues) {
					t.Errorf("issues %v, want %v", got, tc.issues)
				}
			}
			wantNoNewEvents(t, nc, seq)
			if after := snapshot(t, nc); after != before {
				t.Errorf("state changed:\n%s\nwas\n%s", after, before)
			}
		})
	}
}
