package tracing

import (
	"context"
	"os"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// otelEnv lists the variables Setup and the SDK read; tests start without them.
var otelEnv = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

// TestMain runs the tests without the OTEL_* variables of the environment;
// a test that sets one with t.Setenv gets it unset again afterwards.
func TestMain(m *testing.M) {
	for _, k := range otelEnv {
		os.Unsetenv(k)
	}
	os.Exit(m.Run())
}

// setup runs Setup and shuts it down after the test.
func setup(t *testing.T, opts ...Option) {
	t.Helper()
	shutdown, err := Setup(context.Background(), "test-service", opts...)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// record sets up tracing into an in-memory exporter that sees each span as
// it ends.
func record(t *testing.T, opts ...Option) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	setup(t, append([]Option{WithExporter(exp)}, opts...)...)
	return exp
}

// spanNamed returns the only exported span called name of the given kind.
func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name && s.SpanKind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %v span %q, got %d of %d spans", kind, name, len(found), len(exp.GetSpans()))
	}
	return found[0]
}

// assertChild checks that child was started under parent in the same trace.
func assertChild(t *testing.T, parent, child tracetest.SpanStub) {
	t.Helper()
	if child.Parent.TraceID() != parent.SpanContext.TraceID() || child.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("%s: parent = %s/%s, want %s (%s/%s)", child.Name,
			child.Parent.TraceID(), child.Parent.SpanID(), parent.Name,
			parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// remoteParent is a sampled span context as another process would send it.
var remoteParent = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
	Remote:     true,
})

const remoteTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
