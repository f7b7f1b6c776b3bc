package main

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestStatusShowsQuarantine: `storeloop status` reports the messages the
// store quarantined (here one published by a plain NATS client).
func TestStatusShowsQuarantine(t *testing.T) {
	st := storetest.StartStore(t)
	js, err := jetstream.New(natstest.Connect(t, st.Server))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.Publish(ctx, "bucket.orders.inserted", []byte("not json"))
	if err != nil {
		t.Fatal(err)
	}
	// A restart replays the stream and quarantines it.
	if err := st.Node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	storetest.StartNode(t, st.Conn)

	out, stderr, code := cli(t, st.URL, "", "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got events.StatusResult
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	want := events.StatusResult{LastSeq: ack.Sequence, Healthy: true, Quarantined: 1, LastQuarantinedSeq: ack.Sequence}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("status = %+v, want %+v", got, want)
	}
}
