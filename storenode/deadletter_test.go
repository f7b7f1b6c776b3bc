package storenode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// The store node creates the dead-letter stream with exactly
// storeloop.dlq.> and, at its next start, corrects one that captures other
// subjects or republishes them, keeping the limits an operator set.
func TestDeadLetterStreamOwnedByStore(t *testing.T) {
	st := storetest.StartStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	dlq := func() jetstream.StreamConfig {
		t.Helper()
		s, err := js.Stream(ctx, events.DefaultDeadLetterStream)
		if err != nil {
			t.Fatalf("dead-letter stream: %v", err)
		}
		return s.CachedInfo().Config
	}
	if got := dlq(); fmt.Sprint(got.Subjects) != "[storeloop.dlq.>]" || got.Storage != jetstream.FileStorage {
		t.Fatalf("created with subjects %v storage %v, want [storeloop.dlq.>] on file", got.Subjects, got.Storage)
	}

	// As a hostile creator would have left it, with an operator's limit.
	cfg := dlq()
	cfg.Subjects = []string{"storeloop.dlq.>", "store.>", "_INBOX_client.>"}
	cfg.RePublish = &jetstream.RePublish{Source: "storeloop.dlq.>", Destination: "stolen.>"}
	cfg.MaxMsgs = 1000
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	restartNode(t, st)
	got := dlq()
	if fmt.Sprint(got.Subjects) != "[storeloop.dlq.>]" || got.RePublish != nil || got.MaxMsgs != 1000 {
		t.Fatalf("after restart: subjects %v republish %+v maxMsgs %d; want [storeloop.dlq.>], none, 1000 kept",
			got.Subjects, got.RePublish, got.MaxMsgs)
	}

	// Deleted, it is made again.
	if err := js.DeleteStream(ctx, events.DefaultDeadLetterStream); err != nil {
		t.Fatal(err)
	}
	restartNode(t, st)
	if got := dlq(); fmt.Sprint(got.Subjects) != "[storeloop.dlq.>]" {
		t.Fatalf("recreated with subjects %v", got.Subjects)
	}
}
