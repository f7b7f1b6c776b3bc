// Package demo runs the seed's complete e-commerce example end to end on
// real parts: an embedded NATS server with JetStream, a store node, and a
// rule node, all in one process, then prints the results, the causal chain
// of every cascade (rebuilt from the events' meta) and the trace of one
// cascade (OpenTelemetry spans, recorded in memory).
package demo

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/tracing"
)

// Run runs the demo, writing its report to w. It returns an error when any
// result differs from the seed's.
func Run(ctx context.Context, w io.Writer) error {
	spans := tracetest.NewInMemoryExporter()
	ended := &endSignal{ch: make(chan struct{})}
	shutdownTracing, err := tracing.Setup(ctx, "storeloop-demo",
		tracing.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans)), tracing.WithSpanProcessor(ended))
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())

	local, err := examples.StartLocal(ctx)
	if err != nil {
		return err
	}
	defer local.Close()
	cl := local.Client
	fmt.Fprintf(w, "▶ embedded NATS %s (JetStream in a temporary directory, fsync per group commit); store node serving store.*\n", local.URL)

	sc, err := examples.Load("ecommerce")
	if err != nil {
		return err
	}
	if err := sc.Define(ctx, cl); err != nil {
		return err
	}
	fmt.Fprintf(w, "▶ buckets defined: %s\n", bucketNames(sc.Buckets))

	// The rule node: its own connection, as a separate process would have.
	rules, err := examples.RunRules(ctx, local.URL, sc.Rules, rulenode.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer rules.Stop()
	fmt.Fprintf(w, "▶ rule node running rule set %q on %s\n\n", sc.Rules.Name, strings.Join(sc.Rules.Subjects(), ", "))

	shipTrace, err := scenario(ctx, w, cl)
	if err != nil {
		return err
	}
	if err := cl.Settle(ctx, client.SettleRuleSets(sc.Rules.Name)); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	fmt.Fprintln(w, "\n▶ settled: every rule has run and every write it made is stored")

	resultErr := results(ctx, w, cl)
	if err := cascades(ctx, w, cl); err != nil {
		return err
	}
	printTrace(ctx, w, spans, ended, shipTrace)
	if resultErr != nil {
		return resultErr
	}
	// The file's rule node hands the rule set over to a deployed one.
	if err := rules.Stop(); err != nil {
		return err
	}
	return hotSwap(ctx, w, local.URL, cl)
}

// scenario is the seed's order lifecycle. It returns the trace id of the
// first shipment, whose cascade the demo prints as a trace.
func scenario(ctx context.Context, w io.Writer, cl *client.Client) (trace.TraceID, error) {
	var shipTrace trace.TraceID
	do := func(s examples.Step) error {
		if s.What != examples.EcommerceShipOrderOne {
			return s.Do(ctx, cl)
		}
		ctx, span := tracing.Tracer().Start(ctx, "demo: "+s.What)
		defer span.End()
		shipTrace = span.SpanContext().TraceID()
		return s.Do(ctx, cl)
	}
	fmt.Fprintln(w, "▶ order lifecycle (each write is acknowledged once stored; rules run asynchronously)")
	for _, s := range examples.EcommerceSteps() {
		fmt.Fprintf(w, "  %s\n", s.What)
		if err := do(s); err != nil {
			return shipTrace, fmt.Errorf("%s: %w", s.What, err)
		}
	}
	return shipTrace, nil
}

func results(ctx context.Context, w io.Writer, cl *client.Client) error {
	get := func(bucket string, key any, field string) float64 {
		r, err := cl.Bucket(bucket).Get(ctx, key)
		if err != nil || r == nil {
			return -1
		}
		v, _ := r[field].(float64)
		return v
	}
	laptop, mouse, points := get("inventory", "LAPTOP-1", "quantity"), get("inventory", "MOUSE-1", "quantity"), get("loyalty", "alice", "points")
	fmt.Fprintln(w, "\n▶ results")
	fmt.Fprintf(w, "  Laptop stock: %v  (50 - 2)\n", laptop)
	fmt.Fprintf(w, "  Mouse stock: %v  (200 - 5)\n", mouse)
	fmt.Fprintf(w, "  Alice loyalty: %v points  (259 + 15)\n", points)
	if laptop != examples.EcommerceLaptopStock || mouse != examples.EcommerceMouseStock || points != examples.EcommerceAlicePoints {
		return fmt.Errorf("results differ from the seed: laptop %v (want %d), mouse %v (want %d), alice %v (want %d)",
			laptop, examples.EcommerceLaptopStock, mouse, examples.EcommerceMouseStock, points, examples.EcommerceAlicePoints)
	}
	return nil
}

// cascades prints every causal chain, rebuilt from the stream alone.
func cascades(ctx context.Context, w io.Writer, cl *client.Client) error {
	cs, err := cl.Cascades(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\n▶ the cycle, from the event stream (mutation → [rule] → write), as `storeloop trace` shows it")
	for _, c := range cs {
		c.Print(w)
	}
	return nil
}

// printTrace prints the spans of one trace as a tree: the whole cascade of
// shipping order 1, across the store node and the rule node.
func printTrace(ctx context.Context, w io.Writer, exp *tracetest.InMemoryExporter, ended *endSignal, id trace.TraceID) {
	// The rule node ends its delivery span right after the ack that Settle
	// observed: wait (bounded) until it has ended.
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	var stubs []tracetest.SpanStub
	for {
		next := ended.next()
		stubs = stubs[:0]
		for _, s := range exp.GetSpans() {
			if s.SpanContext.TraceID() == id {
				stubs = append(stubs, s)
			}
		}
		if hasSpan(stubs, "process bucket.orders.updated") && hasSpan(stubs, "publish bucket.loyalty.") {
			break
		}
		select {
		case <-next:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	fmt.Fprintf(w, "\n▶ the trace of \"ship order 1\" (trace id %s, %d spans; export it to Jaeger with OTEL_EXPORTER_OTLP_ENDPOINT)\n", id, len(stubs))
	children := map[trace.SpanID][]tracetest.SpanStub{}
	var roots []tracetest.SpanStub
	inTrace := map[trace.SpanID]bool{}
	for _, s := range stubs {
		inTrace[s.SpanContext.SpanID()] = true
	}
	for _, s := range stubs {
		if p := s.Parent.SpanID(); s.Parent.IsValid() && inTrace[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var walk func(s tracetest.SpanStub, indent string)
	walk = func(s tracetest.SpanStub, indent string) {
		fmt.Fprintf(w, "  %s%s [%s] %s\n", indent, s.Name, strings.ToLower(s.SpanKind.String()), s.EndTime.Sub(s.StartTime).Round(time.Microsecond))
		kids := children[s.SpanContext.SpanID()]
		slices.SortFunc(kids, func(a, b tracetest.SpanStub) int { return cmp.Compare(a.StartTime.UnixNano(), b.StartTime.UnixNano()) })
		for _, k := range kids {
			walk(k, indent+"  ")
		}
	}
	for _, r := range roots {
		walk(r, "")
	}
}

// endSignal is a span processor that wakes its waiters each time a span ends.
type endSignal struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced at each span end
}

// next returns a channel closed when the next span ends.
func (e *endSignal) next() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ch
}

func (e *endSignal) OnEnd(sdktrace.ReadOnlySpan) {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.ch)
	e.ch = make(chan struct{})
}

func (e *endSignal) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e *endSignal) Shutdown(context.Context) error                  { return nil }
func (e *endSignal) ForceFlush(context.Context) error                { return nil }

func hasSpan(stubs []tracetest.SpanStub, prefix string) bool {
	return slices.ContainsFunc(stubs, func(s tracetest.SpanStub) bool { return strings.HasPrefix(s.Name, prefix) })
}

func bucketNames(defs []events.BucketDef) string {
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Bucket
	}
	return strings.Join(names, ", ")
}
