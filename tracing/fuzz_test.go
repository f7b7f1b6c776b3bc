package tracing

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

// FuzzExtract feeds arbitrary trace headers through Extract: it must never
// panic, and whatever it accepts must survive an Inject/Extract round trip.
func FuzzExtract(f *testing.F) {
	for _, seed := range []struct{ key, value string }{
		{"traceparent", remoteTraceparent},
		{"Traceparent", remoteTraceparent},
		{"TRACEPARENT", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		{"traceparent", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"},
		{"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{"traceparent", "garbage"},
		{"tracestate", "vendor=value,other=1"},
		{"baggage", "user=alice;p=1"},
	} {
		f.Add(seed.key, seed.value)
	}
	shutdown, err := Setup(context.Background(), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = shutdown(context.Background()) })

	f.Fuzz(func(t *testing.T, key, value string) {
		h := nats.Header{key: {value}, "traceparent": {remoteTraceparent}}
		if key == "traceparent" {
			delete(h, key) // keep the fuzzed value as the only one
			h[key] = []string{value}
		}
		ctx := Extract(context.Background(), h)
		sc := trace.SpanContextFromContext(ctx)
		if !sc.IsValid() {
			return
		}
		msg := &nats.Msg{Subject: "s"}
		Inject(ctx, msg)
		again := trace.SpanContextFromContext(Extract(context.Background(), msg.Header))
		if !again.Equal(sc) {
			t.Fatalf("round trip of %q=%q: %v became %v (headers %v)", key, value, sc, again, msg.Header)
		}
	})
}
