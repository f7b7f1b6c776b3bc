package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/tracing"
	"github.com/storeloop/storeloop/tracing/jaegertest"
)

// hop is one span expected in the trace of a shipment: its service, kind
// and name, and the key (service/kind/name) of its parent.
type hop struct {
	service, kind, name string
	parent              string
}

func (h hop) key() string { return h.service + "/" + h.kind + "/" + h.name }

// shipTrace is the whole trace of shipping order 1 in the e-commerce
// example: the client's update, the store's append, the rule node's
// delivery and rule, its upsert, and the store's append of the loyalty
// record (alice's first points, hence inserted). No rule set listens to
// loyalty events, so the trace ends there.
var shipTrace = []hop{
	{"test-client", "internal", "ship order 1", ""},
	{"test-client", "client", "store.update", "test-client/internal/ship order 1"},
	{"storenode", "server", "store.update", "test-client/client/store.update"},
	{"storenode", "producer", "publish bucket.orders.updated", "storenode/server/store.update"},
	{"rulenode", "consumer", "process bucket.orders.updated", "storenode/producer/publish bucket.orders.updated"},
	{"rulenode", "internal", "rule loyalty-on-ship", "rulenode/consumer/process bucket.orders.updated"},
	{"rulenode", "client", "store.upsert", "rulenode/internal/rule loyalty-on-ship"},
	{"storenode", "server", "store.upsert", "rulenode/client/store.upsert"},
	{"storenode", "producer", "publish bucket.loyalty.inserted", "storenode/server/store.upsert"},
}

// TestCycleInJaeger runs storenode and rulenode as separate processes
// exporting to a real Jaeger, drives the e-commerce order lifecycle with
// the Go client, and reads back from Jaeger's query API the one trace that
// shipping an order makes across the three processes.
func TestCycleInJaeger(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemons and runs Jaeger")
	}
	j := jaegertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	store := procs.StartStorenode(t, procs.StorenodeSpec(t, t.TempDir(), procs.FreeAddr(t), "--otlp", j.OTLPEndpoint))
	natsURL := store.URL
	rules := procs.StartRulenode(t, procs.RulenodeSpec(t, "rulenode", filepath.Join("..", "..", "examples", "ecommerce", "rules.yaml"),
		natsURL, "--otlp", j.OTLPEndpoint))

	// The test is the third process of the trace, with its own provider
	// exporting to the same Jaeger.
	t.Setenv("OTEL_SERVICE_NAME", "test-client")
	shutdownTracing, err := tracing.Setup(ctx, "test-client", tracing.WithOTLPEndpoint(j.OTLPEndpoint))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdownTracing(context.Background()) })

	cl, err := client.Connect(natsURL)
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
	traceID := orderLifecycle(ctx, t, cl, sc.Rules.Name)
	if err := cl.Settle(ctx, client.SettleRuleSets(sc.Rules.Name)); err != nil {
		t.Fatal(err)
	}
	if got, err := cl.Bucket("loyalty").Get(ctx, "alice"); err != nil || got["points"] != 274.0 {
		t.Fatalf("alice's loyalty = %v (%v), want 274 points", got, err)
	}
	shipSeq := eventSeq(ctx, t, cl, traceID, "bucket.orders.updated")

	// Exiting 0 after SIGTERM means each daemon shut down gracefully,
	// which includes flushing its spans to Jaeger.
	if err := shutdownTracing(ctx); err != nil {
		t.Fatalf("flush test-client spans: %v", err)
	}
	rules.Stop(t, 30*time.Second)
	store.Stop(t, 30*time.Second)

	spans := waitForTrace(ctx, t, j, traceID, len(shipTrace))
	byKey := map[string]jaegertest.Span{}
	for _, s := range spans {
		k := hop{service: s.ServiceName, kind: fmt.Sprint(s.Tags["span.kind"]), name: s.OperationName}.key()
		if _, dup := byKey[k]; dup {
			t.Errorf("two spans %s in the trace", k)
		}
		byKey[k] = s
	}
	if len(spans) != len(shipTrace) {
		t.Errorf("trace %s has %d spans, want %d:\n%s", traceID, len(spans), len(shipTrace), describe(spans))
	}
	for _, h := range shipTrace {
		s, ok := byKey[h.key()]
		if !ok {
			t.Errorf("no span %s in trace %s:\n%s", h.key(), traceID, describe(spans))
			continue
		}
		wantParent := ""
		if h.parent != "" {
			wantParent = byKey[h.parent].SpanID
		}
		if got := s.ParentSpanID(); got != wantParent || h.parent != "" && got == "" {
			t.Errorf("%s: parent span %q, want %s (%q)", h.key(), got, h.parent, wantParent)
		}
	}
	consumer := byKey["rulenode/consumer/process bucket.orders.updated"]
	if got := consumer.Tags["storeloop.delivery_count"]; got != 1.0 {
		t.Errorf("delivery_count = %v, want 1", got)
	}
	if got := consumer.Tags["storeloop.stream_seq"]; got != float64(shipSeq) {
		t.Errorf("stream_seq = %v, want %d (the shipment event's sequence)", got, shipSeq)
	}
	if got := consumer.Tags["storeloop.rule_set"]; got != "ecommerce" {
		t.Errorf("rule_set = %v, want ecommerce", got)
	}
}

// orderLifecycle is the seed's e-commerce scenario. It ships order 1 under
// a root span, waits until ruleSet has reacted, and returns that span's
// trace id.
func orderLifecycle(ctx context.Context, t *testing.T, cl *client.Client, ruleSet string) string {
	t.Helper()
	var traceID string
	do := func(s examples.Step) error {
		if s.What != examples.EcommerceShipOrderOne {
			return s.Do(ctx, cl)
		}
		sctx, span := tracing.Tracer().Start(ctx, "ship order 1")
		traceID = span.SpanContext().TraceID().String()
		err := s.Do(sctx, cl)
		span.End()
		if err != nil {
			return err
		}
		// Order 1's points are alice's first (the trace ends in an insert)
		// only if its rule runs before order 2's: wait for it, or under
		// load the two rule workers race.
		return cl.Settle(ctx, client.SettleRuleSets(ruleSet))
	}
	for _, s := range examples.EcommerceSteps() {
		if err := do(s); err != nil {
			t.Fatalf("%s: %v", s.What, err)
		}
	}
	return traceID
}

// eventSeq returns the stream sequence of the event on subject that
// carried trace traceID, read from the stream itself.
func eventSeq(ctx context.Context, t *testing.T, cl *client.Client, traceID, subject string) uint64 {
	t.Helper()
	var seq uint64
	err := cl.History(ctx, subject, func(ev *events.Event, hdr nats.Header) error {
		if tp := tracing.HeaderCarrier(hdr).Get(events.HeaderTraceParent); strings.Contains(tp, traceID) {
			seq = ev.Meta.Seq
		}
		return nil
	})
	if err != nil || seq == 0 {
		t.Fatalf("no %s event of trace %s in the stream (%v)", subject, traceID, err)
	}
	return seq
}

// waitForTrace polls Jaeger until trace id holds n spans (Jaeger stores
// spans shortly after receiving them) and returns them.
func waitForTrace(ctx context.Context, t *testing.T, j *jaegertest.Jaeger, id string, n int) []jaegertest.Span {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var spans []jaegertest.Span
	for {
		// The query API returns whole traces, every service's spans included.
		traces, err := j.Traces("test-client")
		spans = nil
		for _, tr := range traces {
			if tr.TraceID == id {
				spans = tr.Spans
			}
		}
		if err == nil && len(spans) >= n {
			return spans
		}
		select {
		case <-ctx.Done():
			t.Fatalf("trace %s: %d spans in Jaeger, want %d (last error %v):\n%s", id, len(spans), n, err, describe(spans))
		case <-tick.C:
		}
	}
}

func describe(spans []jaegertest.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s/%v/%s parent=%s\n", s.SpanID, s.ServiceName, s.Tags["span.kind"], s.OperationName, s.ParentSpanID())
	}
	return b.String()
}

// TestMain removes the daemons procs built.
func TestMain(m *testing.M) {
	code := m.Run()
	procs.Cleanup()
	os.Exit(code)
}
