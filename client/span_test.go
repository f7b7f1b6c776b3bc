package client

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestStartSpanWithoutExporter: with the no-op provider a command's CLIENT
// span allocates nothing, records nothing and carries the caller's span
// context on, so the request's traceparent is the caller's.
func TestStartSpanWithoutExporter(t *testing.T) {
	c := &Client{opts: options{tracerP: noop.NewTracerProvider()}}
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	sctx, span := c.startSpan(ctx, "upsert", "loyalty", "store.upsert")
	if span.IsRecording() || !span.SpanContext().Equal(parent) || !trace.SpanContextFromContext(sctx).Equal(parent) {
		t.Fatalf("span recording %v with context %v, want a non-recording span carrying %v", span.IsRecording(), span.SpanContext(), parent)
	}
	if n := testing.AllocsPerRun(100, func() { _, span := c.startSpan(ctx, "upsert", "loyalty", "store.upsert"); span.End() }); n != 0 {
		t.Fatalf("%v allocations per span, want 0", n)
	}
}
