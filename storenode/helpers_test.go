package storenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// request sends one raw command body, as a client in any language would,
// and returns the raw reply. Safe from any goroutine.
func request(nc *nats.Conn, cmd string, body []byte, hdr ...string) ([]byte, error) {
	msg := nats.NewMsg(events.CommandSubject(events.DefaultCommandPrefix, cmd))
	msg.Data = body
	for i := 0; i+1 < len(hdr); i += 2 {
		msg.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return resp.Data, nil
}

// rawCall is request for the test goroutine: req is marshalled unless it is
// already []byte.
func rawCall(t testing.TB, nc *nats.Conn, cmd string, req any, hdr ...string) []byte {
	t.Helper()
	data, ok := req.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(req); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := request(nc, cmd, data, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// call sends one raw command, as a client in any language would, and
// decodes the reply into out (when non-nil). It returns the reply's error.
func call(t testing.TB, nc *nats.Conn, cmd string, req any, out any, hdr ...string) *events.Error {
	t.Helper()
	return decodeReply(t, cmd, rawCall(t, nc, cmd, req, hdr...), out)
}

// decodeReply decodes a raw reply into out and returns its error.
func decodeReply(t testing.TB, cmd string, data []byte, out any) *events.Error {
	t.Helper()
	var r events.Reply
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: bad reply %q: %v", cmd, data, err)
	}
	if r.Error != nil {
		return r.Error
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			t.Fatalf("%s: decode result %s: %v", cmd, r.Result, err)
		}
	}
	return nil
}

// mustCall is call failing the test on an error reply.
func mustCall(t testing.TB, nc *nats.Conn, cmd string, req any, out any, hdr ...string) {
	t.Helper()
	if e := call(t, nc, cmd, req, out, hdr...); e != nil {
		t.Fatalf("%s %v: %v", cmd, req, e)
	}
}

// streamEvents returns every message in the stream after seq, decoded.
type streamMsg struct {
	Seq     uint64
	Subject string
	Event   events.Event
	Header  nats.Header
}

func streamAfter(t testing.TB, nc *nats.Conn, after uint64) []streamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []streamMsg
	for seq := after + 1; seq <= info.State.LastSeq; seq++ {
		// A deadline per message, not for them all: thousands of gets
		// on a loaded machine (or under the race detector) take a while.
		mctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := s.GetMsg(mctx, seq)
		cancel()
		if err != nil {
			t.Fatalf("get seq %d: %v", seq, err)
		}
		sm := streamMsg{Seq: seq, Subject: m.Subject, Header: m.Header}
		if err := json.Unmarshal(m.Data, &sm.Event); err != nil {
			t.Fatal(err)
		}
		out = append(out, sm)
	}
	return out
}

func lastSeq(t testing.TB, nc *nats.Conn) uint64 {
	t.Helper()
	var st events.StatusResult
	mustCall(t, nc, events.CmdStatus, struct{}{}, &st)
	return st.LastSeq
}

// ordersDef is the seed's orders bucket.
func ordersDef() events.BucketDef {
	zero := 0.0
	one := 1.0
	return events.BucketDef{
		Bucket: "orders", Key: "id",
		Schema: map[string]events.FieldDef{
			"id":     {Type: events.TypeNumber, Generated: events.GenAutoincrement},
			"userId": {Type: events.TypeString, Required: true},
			"sku":    {Type: events.TypeString},
			"qty":    {Type: events.TypeNumber, Min: &one},
			"total":  {Type: events.TypeNumber, Required: true, Min: &zero},
			"status": {Type: events.TypeString, Enum: []any{"pending", "confirmed", "paid", "shipped"}, Default: "pending"},
		},
		Indexes: []string{"userId", "status"},
	}
}

// define defines buckets, failing the test on an error.
func define(t testing.TB, nc *nats.Conn, defs ...events.BucketDef) {
	t.Helper()
	for _, d := range defs {
		mustCall(t, nc, events.CmdDefine, d, nil)
	}
}

// wantCode fails the test unless e carries code.
func wantCode(t testing.TB, e *events.Error, code events.Code) {
	t.Helper()
	if e == nil {
		t.Fatalf("got success, want error %s", code)
	}
	if e.Code != code {
		t.Fatalf("got error %v, want code %s", e, code)
	}
}

// wantNoNewEvents fails the test if the stream grew past seq.
func wantNoNewEvents(t testing.TB, nc *nats.Conn, seq uint64) {
	t.Helper()
	if msgs := streamAfter(t, nc, seq); len(msgs) > 0 {
		t.Fatalf("stream grew by %d messages, want none: first %s %+v", len(msgs), msgs[0].Subject, msgs[0].Event)
	}
}

// getRecord returns the record under key, nil when absent.
func getRecord(t testing.TB, nc *nats.Conn, bucket string, key any) events.Record {
	t.Helper()
	var r events.Record
	mustCall(t, nc, events.CmdGet, events.GetRequest{Bucket: bucket, Key: key}, &r)
	return r
}

// queryAll pages through a query with the given page size and returns every
// record, failing the test if a page is larger than asked.
func queryAll(t testing.TB, nc *nats.Conn, bucket string, where events.Where, limit int) []events.Record {
	t.Helper()
	var all []events.Record
	after := ""
	for {
		var page events.QueryResult
		mustCall(t, nc, events.CmdQuery, events.QueryRequest{Bucket: bucket, Where: where, Limit: limit, After: after}, &page)
		if limit > 0 && len(page.Records) > limit {
			t.Fatalf("page of %d records, limit %d", len(page.Records), limit)
		}
		all = append(all, page.Records...)
		if page.NextCursor == "" {
			return all
		}
		after = page.NextCursor
	}
}

// snapshot is everything a client can read: the bucket list with counts
// and every record of every bucket, as JSON.
func snapshot(t testing.TB, nc *nats.Conn) string {
	t.Helper()
	var infos []events.BucketInfo
	mustCall(t, nc, events.CmdBuckets, struct{}{}, &infos)
	out := map[string]any{"buckets": infos}
	for _, b := range infos {
		out[b.Bucket] = queryAll(t, nc, b.Bucket, nil, 0)
	}
	data, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// restartNode stops st's node and starts a new one on the same connection
// (and so the same server and stream), as a restarted process would.
func restartNode(t testing.TB, st *storetest.Store, opts ...storenode.Option) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Node.Stop(ctx); err != nil {
		t.Fatalf("stop node: %v", err)
	}
	st.Node = storetest.StartNode(t, st.Conn, append([]storenode.Option{storenode.WithEmbeddedSync(st.Dir)}, opts...)...)
}

func ptr[T any](v T) *T { return &v }

// The seed's other buckets.

func inventoryDef() events.BucketDef {
	return events.BucketDef{Bucket: "inventory", Key: "sku", Schema: map[string]events.FieldDef{
		"sku":      {Type: events.TypeString, Required: true},
		"quantity": {Type: events.TypeNumber, Required: true, Min: ptr(0.0)},
		"reorder":  {Type: events.TypeBoolean, Default: false},
	}}
}

func reorderRequestsDef() events.BucketDef {
	return events.BucketDef{Bucket: "reorderRequests", Key: "id", Schema: map[string]events.FieldDef{
		"id":        {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"sku":       {Type: events.TypeString, Required: true},
		"quantity":  {Type: events.TypeNumber, Required: true},
		"createdAt": {Type: events.TypeNumber, Generated: events.GenTimestamp},
	}}
}

func archivedOrdersDef() events.BucketDef {
	return events.BucketDef{Bucket: "archivedOrders", Key: "id", Schema: map[string]events.FieldDef{
		"id":         {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"userId":     {Type: events.TypeString, Required: true},
		"total":      {Type: events.TypeNumber, Required: true, Min: ptr(0.0)},
		"archivedAt": {Type: events.TypeNumber, Generated: events.GenTimestamp},
	}, Indexes: []string{"userId"}}
}

func sessionsDef() events.BucketDef {
	return events.BucketDef{Bucket: "sessions", Key: "userId", Schema: map[string]events.FieldDef{
		"userId": {Type: events.TypeString, Required: true},
		"token":  {Type: events.TypeString, Required: true},
	}}
}

// usersDef has every generator and a unique, formatted field.
func usersDef() events.BucketDef {
	return events.BucketDef{Bucket: "users", Key: "id", Schema: map[string]events.FieldDef{
		"id":     {Type: events.TypeString, Generated: events.GenUUID},
		"handle": {Type: events.TypeString, Generated: events.GenCUID},
		"joined": {Type: events.TypeNumber, Generated: events.GenTimestamp},
		"name":   {Type: events.TypeString, Required: true, MinLength: ptr(1), MaxLength: ptr(40)},
		"email":  {Type: events.TypeString, Format: events.FormatEmail, Unique: true},
		"role":   {Type: events.TypeString, Enum: []any{"user", "admin"}, Default: "user"},
		"tags":   {Type: events.TypeArray},
	}}
}

// loyaltyDef is the seed's upsert target.
func loyaltyDef() events.BucketDef {
	return events.BucketDef{Bucket: "loyalty", Key: "userId", Schema: map[string]events.FieldDef{
		"userId": {Type: events.TypeString, Required: true},
		"points": {Type: events.TypeNumber, Default: 0.0},
		"tier":   {Type: events.TypeString, Default: "bronze"},
	}}
}

// try is call for goroutines other than the test's: it returns every
// failure (transport or error reply) instead of failing the test.
func try(nc *nats.Conn, cmd string, req any, out any, hdr ...string) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	reply, err := request(nc, cmd, data, hdr...)
	if err != nil {
		return err
	}
	var r events.Reply
	if err := json.Unmarshal(reply, &r); err != nil {
		return fmt.Errorf("%s: bad reply %q: %w", cmd, reply, err)
	}
	if r.Error != nil {
		return r.Error
	}
	if out != nil {
		return json.Unmarshal(r.Result, out)
	}
	return nil
}
