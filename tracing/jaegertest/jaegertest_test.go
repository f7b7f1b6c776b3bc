package jaegertest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/tracing"
	"github.com/storeloop/storeloop/tracing/jaegertest"
)

// TestSpansReachJaeger exports a client span and a server span joined through
// NATS headers to a real Jaeger over OTLP/HTTP and reads them back.
func TestSpansReachJaeger(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Jaeger")
	}
	for _, k := range []string{"OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	j := jaegertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const service = "jaegertest-storenode"
	shutdown, err := tracing.Setup(ctx, service, tracing.WithOTLPEndpoint(j.OTLPEndpoint))
	if err != nil {
		t.Fatal(err)
	}
	cctx, client := tracing.StartCommandClient(ctx, "insert", "orders")
	req := &nats.Msg{Subject: "store.insert"}
	tracing.Inject(cctx, req)
	_, server := tracing.StartCommandServer(tracing.Extract(ctx, req.Header), "insert", "orders")
	server.End()
	client.End()
	if err := shutdown(ctx); err != nil { // flushes the batch
		t.Fatalf("shutdown: %v", err)
	}

	traces, err := j.WaitForSpans(ctx, service, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 1 || len(traces[0].Spans) != 2 {
		t.Fatalf("got %d traces %+v, want one trace of two spans", len(traces), traces)
	}
	wantTrace := client.SpanContext().TraceID().String()
	if traces[0].TraceID != wantTrace {
		t.Errorf("trace id = %s, want %s", traces[0].TraceID, wantTrace)
	}
	byKind := map[any]jaegertest.Span{}
	for _, s := range traces[0].Spans {
		byKind[s.Tags["span.kind"]] = s
		if s.OperationName != "store.insert" || s.ServiceName != service {
			t.Errorf("span %s: operation %q, service %q; want store.insert, %s", s.SpanID, s.OperationName, s.ServiceName, service)
		}
		if s.Tags["rpc.system.name"] != "nats" || s.Tags["storeloop.bucket"] != "orders" {
			t.Errorf("span %s tags = %v, want rpc.system.name=nats, storeloop.bucket=orders", s.SpanID, s.Tags)
		}
	}
	c, s := byKind["client"], byKind["server"]
	if c.SpanID != client.SpanContext().SpanID().String() || c.ParentSpanID() != "" {
		t.Errorf("client span = %+v, want id %s and no parent", c, client.SpanContext().SpanID())
	}
	if s.SpanID != server.SpanContext().SpanID().String() || s.ParentSpanID() != c.SpanID {
		t.Errorf("server span = %+v, want id %s, child of %s", s, server.SpanContext().SpanID(), c.SpanID)
	}
}
