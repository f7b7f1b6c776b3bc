package tracing_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/tracing"
)

// A daemon's main wires telemetry once; its packages only use the API.
func ExampleSetup() {
	otlp := flag.String("otlp", "", "OTLP/HTTP collector base URL, e.g. http://localhost:4318")
	flag.Parse()
	ctx := context.Background()
	shutdown, err := tracing.Setup(ctx, "storenode", tracing.WithOTLPEndpoint(*otlp))
	if err != nil {
		log.Fatal(err)
	}
	defer shutdown(ctx) // flushes spans still in the batch

	metrics, err := tracing.NewMetrics(nil)
	if err != nil {
		log.Fatal(err)
	}
	_ = metrics // handed to the command service
	http.Handle("/metrics", tracing.MetricsHandler())
}

// The carrier writes the W3C keys lowercase and reads them in any case.
func ExampleHeaderCarrier() {
	h := nats.Header{"Traceparent": {"from another client"}}
	c := tracing.HeaderCarrier(h)
	fmt.Println(c.Get("traceparent"))
	c.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	fmt.Println(h)
	// Output:
	// from another client
	// map[traceparent:[00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01]]
}

// One hop: the sender injects its span's context into the message, the
// receiver extracts it and starts its span as a child.
func ExampleInject() {
	ctx := context.Background()
	shutdown, _ := tracing.Setup(ctx, "example") // nothing configured: no export, context still flows
	defer shutdown(ctx)

	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	msg := &nats.Msg{Subject: "bucket.orders.inserted"}
	tracing.Inject(trace.ContextWithSpanContext(ctx, parent), msg)
	fmt.Println(msg.Header.Get("traceparent"))

	received := tracing.Extract(ctx, msg.Header)
	_, span := tracing.StartDelivery(received, msg.Subject, "commerce", 1, 1)
	defer span.End()
	fmt.Println(span.SpanContext().TraceID())
	// Output:
	// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	// 4bf92f3577b34da6a3ce929d0e0e4736
}
