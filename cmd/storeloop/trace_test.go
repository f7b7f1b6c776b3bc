package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/tracing"
)

var atRE = regexp.MustCompile(`at=\d\d:\d\d:\d\d\.\d\d\d`)

// cascadeStep is one outside mutation of the trace test, under its own
// correlation id and root span.
type cascadeStep struct {
	corr string
	do   func(context.Context, *client.Client) error
}

// runCascades runs the e-commerce rules in process and makes each step's
// mutation, settling after each so that the stream order is fixed. It
// returns the trace id of each step's root span and the stream sequence of
// the first event.
func runCascades(t *testing.T, url string, steps []cascadeStep) (map[string]string, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Trace ids in the events' headers, so that the tree shows them.
	shutdown, err := tracing.Setup(ctx, "storeloop-test", tracing.WithExporter(tracetest.NewInMemoryExporter()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })

	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	sc, err := examples.Load("ecommerce")
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Define(ctx, cl); err != nil {
		t.Fatal(err)
	}
	rules, err := examples.RunRules(ctx, url, sc.Rules)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rules.Stop(); err != nil {
			t.Errorf("runner: %v", err)
		}
	})

	traces := map[string]string{}
	for _, s := range steps {
		sctx, span := tracing.Tracer().Start(client.WithCause(ctx, client.CausalContext{CorrelationID: s.corr}), s.corr)
		err := s.do(sctx, cl)
		span.End()
		if err != nil {
			t.Fatalf("%s: %v", s.corr, err)
		}
		traces[s.corr] = span.SpanContext().TraceID().String()
		if err := cl.Settle(ctx, client.SettleRuleSets(sc.Rules.Name)); err != nil {
			t.Fatal(err)
		}
	}
	var first uint64
	err = cl.History(ctx, "", func(ev *events.Event, _ nats.Header) error {
		if first == 0 {
			first = ev.Meta.Seq
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return traces, first
}

func TestTrace(t *testing.T) {
	url := storetest.Start(t)
	insert := func(bucket string, rec events.Record) func(context.Context, *client.Client) error {
		return func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Bucket(bucket).Insert(ctx, rec)
			return err
		}
	}
	status := func(s string) func(context.Context, *client.Client) error {
		return func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Bucket("orders").Update(ctx, 1, events.Record{"status": s})
			return err
		}
	}
	traces, seq := runCascades(t, url, []cascadeStep{
		{"stock", insert("inventory", events.Record{"sku": "LAPTOP-1", "name": "Pro Laptop", "quantity": 50.0})},
		{"order-1", insert("orders", events.Record{"userId": "alice", "sku": "LAPTOP-1", "qty": 2.0, "total": 2598.0})},
		{"confirm-1", status("confirmed")},
		{"ship-1", status("shipped")},
	})
	// The lines of each cascade, times as at=T; seq are consecutive because
	// each step settled before the next.
	line := func(offset uint64, text, corr string) string {
		return fmt.Sprintf(text, seq+offset) + " at=T trace=" + traces[corr] + "\n"
	}
	cascade := map[string]string{
		"stock": "cascade stock (1 events)\n" +
			line(0, "└─ bucket.inventory.inserted key=LAPTOP-1 hop=0 seq=%d", "stock"),
		"order-1": "cascade order-1 (1 events)\n" +
			line(1, "└─ bucket.orders.inserted key=1 hop=0 seq=%d", "order-1"),
		"confirm-1": "cascade confirm-1 (2 events)\n" +
			line(2, "└─ bucket.orders.updated key=1 hop=0 seq=%d", "confirm-1") +
			line(3, "   └─ [deduct-inventory-on-confirm] bucket.inventory.updated key=LAPTOP-1 hop=1 seq=%d", "confirm-1"),
		"ship-1": "cascade ship-1 (2 events)\n" +
			line(4, "└─ bucket.orders.updated key=1 hop=0 seq=%d", "ship-1") +
			line(5, "   └─ [loyalty-on-ship] bucket.loyalty.inserted key=alice hop=1 seq=%d", "ship-1"),
	}
	all := cascade["stock"] + cascade["order-1"] + cascade["confirm-1"] + cascade["ship-1"]

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "all", args: []string{"trace"}, stdout: all},
		{name: "last 0 is all", args: []string{"trace", "--last", "0"}, stdout: all},
		{name: "last 1", args: []string{"trace", "--last", "1"}, stdout: cascade["ship-1"]},
		{name: "last 2", args: []string{"trace", "--last", "2"}, stdout: cascade["confirm-1"] + cascade["ship-1"]},
		{name: "by correlation id", args: []string{"trace", "confirm-1"}, stdout: cascade["confirm-1"]},
		{name: "with Jaeger links", args: []string{"trace", "ship-1", "--jaeger", "http://jaeger:16686/"},
			stdout: cascade["ship-1"] + "  jaeger: http://jaeger:16686/trace/" + traces["ship-1"] + "\n"},
		{name: "unknown correlation id", args: []string{"trace", "nope"}, code: exitCommand,
			stderr: "error: no events with correlation id \"nope\"\n"},
		{name: "two ids", args: []string{"trace", "a", "b"}, code: exitUsage,
			stderr: "error: accepts at most 1 arg(s), received 2\nRun 'storeloop trace --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, url, "", tt.args...)
			stdout = atRE.ReplaceAllString(stdout, "at=T")
			if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Fatalf("storeloop %s\nexit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
					strings.Join(tt.args, " "), code, tt.code, stdout, tt.stdout, stderr, tt.stderr)
			}
		})
	}
}
