package rulenode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/rulenode"
)

// TestForeignEventsDeadLettered: messages on bucket.> that no trusted
// store wrote (garbage, a real event's headers on another body, a real
// event published again, an event without proof, one proved by a key the
// stream does not trust) are not acted on: each
// is dead-lettered with reason foreign and acknowledged, while the
// store's own events are.
func TestForeignEventsDeadLettered(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef)
	set, err := rulenode.NewRuleSet("shop", &rulenode.Rule{
		ID: "award",
		On: []string{"bucket.orders.inserted"},
		Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
			user := ev.Record["userId"]
			_, err := env.Store.Upsert(ctx, "loyalty", user, events.Record{"userId": user}, map[string]float64{"points": 1})
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.run(set)
	h.insert("orders", events.Record{"userId": "alice", "total": 10})
	real := h.streamMsgs(events.DefaultStream, "bucket.orders.inserted")[0]

	forge := func(body []byte, hdr nats.Header) *nats.Msg {
		m := nats.NewMsg("bucket.orders.inserted")
		m.Data = body
		for k, v := range hdr {
			if !strings.HasPrefix(k, "Nats-") {
				m.Header[k] = v
			}
		}
		return m
	}
	foreign := []*nats.Msg{
		forge([]byte("not json"), nil),
		forge([]byte(strings.Replace(string(real.Data), `"alice"`, `"mallory"`, 1)), real.Header),
		forge(real.Data, real.Header),
		forge([]byte(`{"type":"inserted","bucket":"orders","key":99,"record":{"id":99,"userId":"eve","total":5,"_version":1},"meta":{"eventId":"x","time":1,"correlationId":"x","hop":0}}`), nil),
	}
	var seqs []uint64
	for _, m := range foreign {
		ack, err := h.js.PublishMsg(h.ctx(), m)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	// A well-formed proof at the right sequence by a key the stream does
	// not trust.
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := proof.NewSigner(events.DefaultStream, kp)
	if err != nil {
		t.Fatal(err)
	}
	m := forge([]byte(strings.Replace(string(real.Data), `"alice"`, `"oscar"`, 1)), nil)
	next := seqs[len(seqs)-1] + 1
	hdrs, _, err := signer.Sign([]proof.Message{{Seq: next, Subject: m.Subject, Body: m.Data}}, proof.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	m.Header.Set(proof.Header, hdrs[0])
	ack, err := h.js.PublishMsg(h.ctx(), m, jetstream.WithExpectLastSequence(next-1))
	if err != nil {
		t.Fatal(err)
	}
	foreign = append(foreign, m)
	seqs = append(seqs, ack.Sequence)
	// The store refuses the first write after them, then resumes by itself.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := h.cl.Bucket("orders").Insert(h.ctx(), events.Record{"userId": "bob", "total": 20})
		if err == nil {
			break
		}
		if !errors.Is(err, events.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("insert bob: %v", err)
		}
	}
	h.settle("shop")

	wantNumber(t, h.get("loyalty", "alice"), "points", 1)
	wantNumber(t, h.get("loyalty", "bob"), "points", 1)
	for _, who := range []string{"mallory", "eve", "oscar"} {
		if got := h.get("loyalty", who); got != nil {
			t.Errorf("a foreign event was acted on: %v", got)
		}
	}
	dls := h.deadLetters("shop")
	if len(dls) != len(foreign) {
		t.Fatalf("%d dead letters, want %d: %+v", len(dls), len(foreign), dls)
	}
	// Workers dead-letter in any order: match them by sequence.
	want := map[uint64]bool{}
	bodies := map[uint64][]byte{}
	for i, seq := range seqs {
		want[seq] = true
		bodies[seq] = foreign[i].Data
	}
	for _, d := range dls {
		if !want[d.StreamSeq] || d.Reason != rulenode.ReasonForeign || d.Deliveries != 1 || !strings.Contains(d.Error, "not written by a trusted store") {
			t.Errorf("dead letter = %+v, want reason foreign for one of seqs %v", d, seqs)
		}
		// Each carries its body: as JSON when it is, else in base64.
		body, payload, base64 := bodies[d.StreamSeq], []byte(d.Payload), d.PayloadBase64
		if !json.Valid(body) {
			payload, base64 = base64, payload
		}
		if !bytes.Equal(payload, body) || base64 != nil {
			t.Errorf("dead letter of seq %d: payload %q, base64 %q; want the body %q", d.StreamSeq, d.Payload, d.PayloadBase64, body)
		}
		delete(want, d.StreamSeq)
	}
}
