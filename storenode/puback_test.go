package storenode

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/storeloop/storeloop/internal/natstest"
)

func TestParsePubAck(t *testing.T) {
	noResponders := &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}
	for _, tc := range []struct {
		name    string
		msg     *nats.Msg
		seq     uint64
		apiCode int // a refusal: the APIError's code and err_code
		errCode jetstream.ErrorCode
		unknown bool // an error that is no refusal
	}{
		{name: "stored", msg: &nats.Msg{Data: []byte(`{"stream":"STORELOOP","seq":42}`)}, seq: 42},
		{name: "stored with domain and batch", msg: &nats.Msg{Data: []byte(`{"stream":"S","domain":"d","seq":7,"batch":"b","count":3}`)}, seq: 7},
		{name: "wrong last sequence", msg: &nats.Msg{Data: []byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 41"},"stream":"S","seq":0}`)}, apiCode: 400, errCode: 10071},
		{name: "no stream", msg: noResponders, unknown: true},
		{name: "empty", msg: &nats.Msg{}, unknown: true},
		{name: "not JSON", msg: &nats.Msg{Data: []byte(`+OK`)}, unknown: true},
		{name: "no sequence", msg: &nats.Msg{Data: []byte(`{"stream":"S"}`)}, unknown: true},
		{name: "no stream name", msg: &nats.Msg{Data: []byte(`{"seq":3}`)}, unknown: true},
		{name: "negative sequence", msg: &nats.Msg{Data: []byte(`{"stream":"S","seq":-1}`)}, unknown: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq, err := parsePubAck(tc.msg)
			var apiErr *jetstream.APIError
			refused := errors.As(err, &apiErr)
			switch {
			case tc.apiCode != 0:
				if !refused || apiErr.Code != tc.apiCode || apiErr.ErrorCode != tc.errCode || seq != 0 {
					t.Fatalf("got %d, %v; want the refusal %d/%d", seq, err, tc.apiCode, tc.errCode)
				}
			case tc.unknown:
				if err == nil || refused || seq != 0 {
					t.Fatalf("got %d, %v; want an error that is no refusal", seq, err)
				}
			case err != nil || seq != tc.seq:
				t.Fatalf("got %d, %v; want %d", seq, err, tc.seq)
			}
		})
	}
	if _, err := parsePubAck(noResponders); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("no responders: %v, want ErrNoStreamResponse", err)
	}
}

// FuzzParsePubAck: any reply is a sequence, a refusal carrying the
// stream's error, or another error; never a sequence 0 and never a panic.
func FuzzParsePubAck(f *testing.F) {
	f.Add([]byte(`{"stream":"S","seq":1}`))
	f.Add([]byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 1"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, err := parsePubAck(&nats.Msg{Data: data})
		var apiErr *jetstream.APIError
		switch {
		case err == nil && seq == 0:
			t.Fatalf("%q: sequence 0 without an error", data)
		case err != nil && seq != 0:
			t.Fatalf("%q: sequence %d with %v", data, seq, err)
		case errors.As(err, &apiErr) && !strings.Contains(string(data), "error"):
			t.Fatalf("%q: a refusal without the stream's error: %v", data, err)
		}
	})
}

// TestAcks drives the node's ack subscription against a real stream: acks
// in order, a refusal as a *jetstream.APIError, a lost reply as unknown, a
// late reply to an abandoned append skipped, the pending cap, a timeout.
func TestAcks(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Server(t)
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"b.>"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := subscribeAcks(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	never := make(chan time.Time)
	publish := func(expect uint64) appendAck {
		t.Helper()
		m := nats.NewMsg("b.x")
		m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(expect, 10))
		w, err := a.publish(nc, m, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	wantSeq := func(w appendAck, want uint64) {
		t.Helper()
		if seq, err := a.wait(w, never); err != nil || seq != want {
			t.Fatalf("append %d: %d, %v; want sequence %d", w.id, seq, err, want)
		}
	}

	w1, w2 := publish(0), publish(1)
	wantSeq(w1, 1)
	wantSeq(w2, 2)

	// A second writer's view: the stream refuses, the acker knows it is refused.
	refused := publish(1)
	var apiErr *jetstream.APIError
	if _, err := a.wait(refused, never); !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("refused append: %v, want APIError %d", err, jetstream.JSErrCodeStreamWrongLastSequence)
	}

	// An append whose reply never comes (its id taken, nothing sent)
	// followed by one that is stored: the first is lost, the second acked.
	a.slots <- struct{}{}
	a.next++
	lost := appendAck{id: a.next}
	w3 := publish(2)
	if _, err := a.wait(lost, never); err == nil || errors.As(err, &apiErr) || errors.Is(err, errAckTimeout) {
		t.Fatalf("lost reply: %v, want an unknown outcome", err)
	}
	wantSeq(w3, 3)

	// Given up on (the acker's timeout), its late reply is skipped.
	abandoned, w5 := publish(3), publish(4)
	a.abandon(abandoned)
	wantSeq(w5, 5)

	// No reply within the timeout.
	a.slots <- struct{}{}
	a.next++
	fired := make(chan time.Time, 1)
	fired <- time.Now()
	if _, err := a.wait(appendAck{id: a.next}, fired); !errors.Is(err, errAckTimeout) {
		t.Fatalf("no reply: %v, want errAckTimeout", err)
	}
	a.abandon(appendAck{id: a.next})

	// Every slot taken: publish refuses after its timeout and sends nothing.
	if len(a.slots) != 0 {
		t.Fatalf("%d slots still taken, want 0", len(a.slots))
	}
	for range cap(a.slots) {
		a.slots <- struct{}{}
	}
	if _, err := a.publish(nc, nats.NewMsg("b.x"), time.Millisecond); err == nil {
		t.Fatal("publish with every slot taken: no error")
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != 5 {
		t.Fatalf("stream's last sequence %d, want 5", info.State.LastSeq)
	}
}
