package client_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
)

// logLines records what a logger wrote.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logLines) has(substr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			return true
		}
	}
	return false
}

// TestFailoverWaitCarriesRequest: a request that finds no store node
// serving (a failover under way) is retried past the retries until one
// serves, with the same command id.
func TestFailoverWaitCarriesRequest(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	logs := &logLines{}
	c, err := client.New(nc, client.WithRetries(0), client.WithFailoverWait(time.Minute),
		client.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Bucket("orders").Insert(ctxT(t), events.Record{"total": 1.0})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !logs.has("no responders") {
		if time.Now().After(deadline) {
			t.Fatal("the request was not retried after no responders")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := serve(t, nc, "store.insert", okReply) // the new leader serves
	if err := <-done; err != nil {
		t.Fatalf("insert across the failover: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) != 1 || r.reqs[0].Header.Get(events.HeaderCommandID) == "" {
		t.Fatalf("the serving node got %d requests, want 1 with a command id", len(r.reqs))
	}
}

// TestFailoverWaitCarriesElection: during an election of the stream's
// leader the store node serves but answers unavailable or indeterminate,
// or not at all; by default the command is sent again, past the retries,
// with the same command id, until the store node applies it. An answer
// (validation) is not retried, failover wait or not.
func TestFailoverWaitCarriesElection(t *testing.T) {
	indeterminate := &events.Reply{Error: &events.Error{Code: events.CodeIndeterminate, Message: "append failed"}}
	replies := []*events.Reply{indeterminate, nil}
	for range 10 {
		replies = append(replies, unavailableReply)
	}
	tests := []struct {
		name     string
		replies  []*events.Reply
		wantReqs int
		wantCode events.Code
	}{
		{"election", append(replies, okReply), len(replies) + 1, ""},
		{"validation is an answer", []*events.Reply{validationReply, okReply}, 1, events.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := natstest.Connect(t, natstest.Server(t))
			r := serve(t, nc, "store.insert", tt.replies...)
			c, err := client.New(nc, client.WithRetries(0), client.WithTimeout(200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Bucket("orders").Insert(ctxT(t), events.Record{"total": 1.0})
			if (err == nil) != (tt.wantCode == "") || err != nil && events.CodeOf(err) != tt.wantCode {
				t.Fatalf("insert err = %v, want code %q", err, tt.wantCode)
			}
			reqs := r.requests()
			if len(reqs) != tt.wantReqs {
				t.Fatalf("store saw %d requests, want %d", len(reqs), tt.wantReqs)
			}
			for i, m := range reqs {
				if m.Header.Get(events.HeaderCommandID) != reqs[0].Header.Get(events.HeaderCommandID) {
					t.Fatalf("attempt %d has another command id", i)
				}
			}
		})
	}
}

// TestFailoverWaitEnds: a store node that stays unavailable past the
// failover wait is reported unavailable.
func TestFailoverWaitEnds(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	r := serve(t, nc, "store.insert", unavailableReply)
	c, err := client.New(nc, client.WithRetries(0), client.WithFailoverWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bucket("orders").Insert(ctxT(t), events.Record{"total": 1.0}); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("insert err = %v, want unavailable", err)
	}
	if n := len(r.requests()); n < 2 {
		t.Fatalf("store saw %d requests, want the command retried during the wait", n)
	}
}

// TestFailoverWaitOff: with no failover wait, the retries alone bound a
// request that finds no store node.
func TestFailoverWaitOff(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	c, err := client.New(nc, client.WithRetries(0), client.WithFailoverWait(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 20*time.Second)
	defer cancel()
	_, err = c.Bucket("orders").Get(ctx, 1)
	if !errors.Is(err, nats.ErrNoResponders) || !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable wrapping no responders", err)
	}
	if _, err := client.New(nc, client.WithFailoverWait(-time.Second)); err == nil {
		t.Fatal("negative failover wait accepted")
	}
}

// TestNodesSkipsForgedAnswers: an answer on the nodes subject that is not
// a node status (a hostile client answering too) does not hide the store
// nodes' answers; alone, it is the error.
func TestNodesSkipsForgedAnswers(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subject := events.CommandSubject(events.DefaultCommandPrefix, events.CmdNodes)
	forged, err := nc.Subscribe(subject, func(m *nats.Msg) { m.Respond([]byte("garbage")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nodes(ctxT(t)); err == nil {
		t.Fatal("Nodes with only a forged answer: no error")
	}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		m.Respond([]byte(`{"result":{"node":"n1","role":"leader"}}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Nodes(ctxT(t))
	if err != nil {
		t.Fatalf("Nodes with a forged and a real answer: %v", err)
	}
	if len(got) != 1 || got[0].Node != "n1" {
		t.Fatalf("Nodes = %+v, want the one real answer", got)
	}
	forged.Unsubscribe()
}
