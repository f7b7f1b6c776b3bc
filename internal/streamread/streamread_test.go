package streamread_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/streamread"
)

// Upto reads to the last sequence of the stream info it is given, fetched
// once by the caller: messages appended after the lookup are not read, so
// the caller's last sequence and the read agree. All looks the stream up
// itself and reads what it holds then.
func TestUptoReadsToTheInfoGiven(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for i := range n {
			if _, err := js.Publish(ctx, fmt.Sprintf("s.%d", i), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(f func(fn func(uint64, jetstream.Msg) error) error) []uint64 {
		t.Helper()
		var seqs []uint64
		if err := f(func(seq uint64, _ jetstream.Msg) error { seqs = append(seqs, seq); return nil }); err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	publish(3)
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	publish(2) // after the lookup
	if got := read(func(fn func(uint64, jetstream.Msg) error) error { return streamread.Upto(ctx, s, 1, fn) }); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("Upto read %v, want [1 2 3]", got)
	}
	if got := read(func(fn func(uint64, jetstream.Msg) error) error { return streamread.All(ctx, js, "S", fn) }); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("All read %v, want [1 2 3 4 5]", got)
	}
}
