package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/internal/natstest"
)

// Issue 8 item 6: a stream that captures store.> answers every command with
// its PubAck; the CLI printed null and exited 0 for an insert. A reply that
// is neither a result nor an error is an error, and the CLI says so.
func TestReplyThatIsNoStoreReplyFails(t *testing.T) {
	s := natstest.Server(t)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HIJACK", Subjects: []string{"store.>"}}); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := cli(t, s.ClientURL(), "", "insert", "orders", `{"userId":"alice","total":10}`)
	if code != exitCommand || stdout != "" || !strings.HasPrefix(stderr, `error: internal: not a store reply (neither result nor error): {"stream":"HIJACK"`) {
		t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit %d naming the reply", code, stdout, stderr, exitCommand)
	}
}
