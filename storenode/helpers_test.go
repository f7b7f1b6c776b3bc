package storenode_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// call sends one raw command, as a client in any language would, and
// decodes the reply into out (when non-nil). It returns the reply's error.
func call(t testing.TB, nc *nats.Conn, cmd string, req any, out any, hdr ...string) *events.Error {
	t.Helper()
	data, ok := req.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(req); err != nil {
			t.Fatal(err)
		}
	}
	msg := nats.NewMsg(events.CommandSubject(events.DefaultCommandPrefix, cmd))
	msg.Data = data
	for i := 0; i+1 < len(hdr); i += 2 {
		msg.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	var r events.Reply
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatalf("%s: bad reply %q: %v", cmd, resp.Data, err)
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
		m, err := s.GetMsg(ctx, seq)
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
