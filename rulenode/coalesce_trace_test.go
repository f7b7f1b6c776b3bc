package rulenode

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/tracing"
)

// Coalesced writes keep a trace hop each: every command has its own CLIENT
// span, a child of its rule's span, carrying the batch's id and size; the
// store's SERVER span of the command is that span's child and its event
// continues the rule's trace. The batch request itself records no span.
func TestCoalescedWritesKeepTheirSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := client.Connect(storetest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = cl.Define(ctx, events.BucketDef{Bucket: "accounts", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeString, Required: true},
	}})
	if err != nil {
		t.Fatal(err)
	}

	sc := newStoreClient(cl, "set", "rule", 3)
	sc.co = newCoalescer(cl, 8)
	const n = 3
	rules := make([]trace.SpanContext, n) // each write's rule span, a trace of its own
	errs := make([]error, n)
	sendTogether(t, sc.co, n, func(i int) {
		rctx, span := tracing.StartRule(ctx, fmt.Sprint("rule", i))
		rules[i] = span.SpanContext()
		_, errs[i] = sc.Insert(withPath(rctx, fmt.Sprint(i)), "accounts", events.Record{"id": fmt.Sprint("a", i)})
		span.End()
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}

	// The store ends its spans as it replies: wait for all of them.
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for deadline := time.Now().Add(10 * time.Second); ; {
		clear(byName)
		for _, s := range rec.Ended() {
			byName[s.Name()] = append(byName[s.Name()], s)
		}
		if len(byName["store.insert"]) == 2*n && len(byName["publish bucket.accounts.inserted"]) == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := len(byName["store.batch"]); got != 0 {
		t.Errorf("%d store.batch spans recorded, want none (the batch is not sampled)", got)
	}
	ruleOf := func(tid trace.TraceID) int {
		for i, r := range rules {
			if r.TraceID() == tid {
				return i
			}
		}
		return -1
	}
	clients := map[trace.SpanID]int{} // CLIENT span → its write
	var batchID attribute.Value
	for _, s := range byName["store.insert"] {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		i := ruleOf(s.SpanContext().TraceID())
		if i < 0 || s.Parent().SpanID() != rules[i].SpanID() {
			t.Fatalf("CLIENT span %s: parent %s, not a rule's span", s.SpanContext().SpanID(), s.Parent().SpanID())
		}
		clients[s.SpanContext().SpanID()] = i
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value
		}
		if got, want := attrs[tracing.AttrCommandID].AsString(), CommandID("set", "rule", 3, fmt.Sprint(i)); got != want {
			t.Errorf("write %d: command id attribute %q, want %q", i, got, want)
		}
		if got := attrs[AttrBatchSize].AsInt64(); got != n {
			t.Errorf("write %d: batch size %d, want %d", i, got, n)
		}
		if id := attrs[AttrBatchID]; id.AsString() == "" || batchID.AsString() != "" && id != batchID {
			t.Errorf("write %d: batch id %q, want one id shared by the batch (%q)", i, id.AsString(), batchID.AsString())
		} else {
			batchID = id
		}
	}
	if len(clients) != n {
		t.Fatalf("%d CLIENT spans, want %d", len(clients), n)
	}
	servers := 0
	for _, s := range byName["store.insert"] {
		if s.SpanKind() != trace.SpanKindServer {
			continue
		}
		servers++
		if i, ok := clients[s.Parent().SpanID()]; !ok || s.SpanContext().TraceID() != rules[i].TraceID() {
			t.Errorf("SERVER span %s: parent %s, not a write's CLIENT span", s.SpanContext().SpanID(), s.Parent().SpanID())
		}
	}
	if servers != n {
		t.Errorf("%d SERVER spans, want %d", servers, n)
	}
	seen := map[int]bool{}
	for _, s := range byName["publish bucket.accounts.inserted"] {
		seen[ruleOf(s.SpanContext().TraceID())] = true
	}
	for i := range n {
		if !seen[i] {
			t.Errorf("write %d: its event's append is not in its rule's trace", i)
		}
	}
}
