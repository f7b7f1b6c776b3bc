package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestSpansWithoutExporter: with nothing exporting (Setup's no-op
// provider) every Start function allocates nothing, its span records
// nothing, and the caller's span context travels on unchanged, so a
// command or event still carries the trace it came with.
func TestSpansWithoutExporter(t *testing.T) {
	setup(t)
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	starts := map[string]func(context.Context) (context.Context, trace.Span){
		"command client": func(ctx context.Context) (context.Context, trace.Span) {
			return StartCommandClient(ctx, "upsert", "loyalty")
		},
		"command server": func(ctx context.Context) (context.Context, trace.Span) {
			return StartCommandServer(ctx, "upsert", "loyalty")
		},
		"append": func(ctx context.Context) (context.Context, trace.Span) {
			return StartAppend(ctx, "bucket.loyalty.inserted")
		},
		"delivery": func(ctx context.Context) (context.Context, trace.Span) {
			return StartDelivery(ctx, "bucket.orders.updated", "shop", 42, 1)
		},
		"rule": func(ctx context.Context) (context.Context, trace.Span) {
			return StartRule(ctx, "loyalty-on-ship")
		},
	}
	for name, start := range starts {
		t.Run(name, func(t *testing.T) {
			for _, in := range []trace.SpanContext{parent, {}} {
				ctx := context.Background()
				if in.IsValid() {
					ctx = trace.ContextWithRemoteSpanContext(ctx, in)
				}
				ctx, span := start(ctx)
				if span.IsRecording() {
					t.Fatal("span records with nothing exporting")
				}
				if got := trace.SpanContextFromContext(ctx); !got.Equal(in) || !span.SpanContext().Equal(in) {
					t.Fatalf("span context %v (context %v), want the caller's %v", span.SpanContext(), got, in)
				}
			}
			ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
			if n := testing.AllocsPerRun(100, func() { _, span := start(ctx); span.End() }); n != 0 {
				t.Fatalf("%v allocations per span, want 0", n)
			}
		})
	}
}

// BenchmarkStartDeliveryWithoutExporter is a rule node's delivery span
// per event when nothing exports spans.
func BenchmarkStartDeliveryWithoutExporter(b *testing.B) {
	shutdown, err := Setup(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(context.Background())
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	b.ReportAllocs()
	for b.Loop() {
		_, span := StartDelivery(ctx, "bucket.orders.updated", "shop", 42, 1)
		span.End()
	}
}
