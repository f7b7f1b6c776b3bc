package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/tracing"
)

// Buckets and rule set of the cycle benchmark.
const (
	cycleIn      = "cyclein"
	cycleOut     = "cycleout"
	CycleRuleSet = "benchcycle"
)

// Cycle is one turn of storeloop's cycle, timed: a mutation through the
// client, its event, a rule in a rule runner with its own connection (as a
// rule node would have), the rule's write back through the store, and that
// write's event delivered from the stream to an observer. Turns run one at
// a time, so a turn's time is the cycle's latency, not a throughput.
type Cycle struct {
	env     *Env
	watch   *client.Watcher
	nc      *nats.Conn
	stop    context.CancelFunc
	stopped chan error
}

// StartCycle defines the cycle's buckets on e and starts its rule runner
// and observer. Close stops them.
func (e *Env) StartCycle(ctx context.Context) (*Cycle, error) {
	// The mutation's key is generated, so that turns of several cycles on
	// one Env (a benchmark runs its function more than once) never collide.
	for b, id := range map[string]events.FieldDef{
		cycleIn:  {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		cycleOut: {Type: events.TypeNumber, Required: true},
	} {
		def := events.BucketDef{Bucket: b, Key: "id", Schema: map[string]events.FieldDef{"id": id}}
		if err := e.Client.Define(ctx, def); err != nil {
			return nil, err
		}
	}
	set, err := rulenode.NewRuleSet(CycleRuleSet, &rulenode.Rule{
		ID:     "write-back",
		On:     []string{events.EventSubject(cycleIn, events.OpInserted)},
		Writes: []string{events.EventSubject(cycleOut, events.OpInserted)},
		Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
			_, err := env.Store.Insert(ctx, cycleOut, events.Record{"id": ev.Key})
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	c := &Cycle{env: e, stopped: make(chan error, 1)}
	if c.nc, err = nats.Connect(e.Server.ClientURL(), nats.Name("bench rule node")); err != nil {
		return nil, err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		c.nc.Close()
		return nil, err
	}
	rcl, err := client.New(c.nc)
	if err != nil {
		c.nc.Close()
		return nil, err
	}
	if c.watch, err = e.Client.Follow(ctx, events.EventSubject(cycleOut, events.OpInserted)); err != nil {
		c.nc.Close()
		return nil, err
	}
	runner := rulenode.NewRunner(js, rcl, set, rulenode.WithLogger(slog.New(slog.DiscardHandler)))
	var runCtx context.Context
	runCtx, c.stop = context.WithCancel(context.Background())
	go func() { c.stopped <- runner.Run(runCtx) }()
	return c, nil
}

// Turn runs one cycle and returns its latency: from sending the mutation
// to receiving the event of the rule's write-back.
func (c *Cycle) Turn(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	rec, err := c.env.Client.Bucket(cycleIn).Insert(ctx, events.Record{})
	if err != nil {
		return 0, err
	}
	key := rec["id"]
	for {
		ev, err := c.watch.Next(ctx)
		if err != nil {
			return 0, fmt.Errorf("bench: waiting for the write-back of %v: %w", key, err)
		}
		if ev.Key == key {
			return time.Since(start), nil
		}
	}
}

// Close stops the runner and the observer.
func (c *Cycle) Close() error {
	c.watch.Stop()
	c.stop()
	err := <-c.stopped
	c.nc.Close()
	return err
}

// Latencies returns n turns of the cycle, after one turn of warm-up.
func (c *Cycle) Latencies(ctx context.Context, n int) (Latencies, error) {
	if _, err := c.Turn(ctx); err != nil {
		return nil, err
	}
	lat := make(Latencies, 0, n)
	for range n {
		d, err := c.Turn(ctx)
		if err != nil {
			return lat, err
		}
		lat = append(lat, d)
	}
	return lat, nil
}

// Latencies are the times of a series of turns.
type Latencies []time.Duration

// Quantile returns the q-quantile (0 ≤ q ≤ 1) by the nearest-rank method,
// or 0 for no latencies.
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s))-1e-9)) - 1 // the ⌈q·n⌉th, 1-based
	return s[min(max(i, 0), len(s)-1)]
}

// TracingMode is a tracing configuration the cycle is measured under.
type TracingMode struct {
	Name string
	// Sampler is nil for tracing off (the no-op provider).
	Sampler sdktrace.Sampler
}

// TracingModes are the configurations compared: off, every trace sampled,
// and 1% of new traces (continuing the caller's decision otherwise), as a
// busy deployment would run.
var TracingModes = []TracingMode{
	{Name: "off"},
	{Name: "always", Sampler: sdktrace.AlwaysSample()},
	{Name: "ratio0.01", Sampler: sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))},
}

// SpanSink is an OTLP/HTTP endpoint that accepts and discards what it is
// sent, so that traced runs pay for everything a deployment pays for
// (batching, protobuf encoding, an HTTP round trip) but a collector.
type SpanSink struct {
	URL      string
	Requests atomic.Int64
	Bytes    atomic.Int64
	srv      *http.Server
}

// StartSpanSink listens on a loopback port.
func StartSpanSink() (*SpanSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SpanSink{URL: "http://" + ln.Addr().String()}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		s.Requests.Add(1)
		s.Bytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the sink.
func (s *SpanSink) Close() error { return s.srv.Close() }

// SetupTracing installs mode's global telemetry for everything in this
// process (store node, client, runner): for a traced mode, the OTLP/HTTP
// exporter behind a batch span processor, sending to sink. The returned
// shutdown flushes it.
func SetupTracing(ctx context.Context, mode TracingMode, sink *SpanSink) (shutdown func(context.Context) error, err error) {
	if mode.Sampler == nil {
		return tracing.Setup(ctx, "bench")
	}
	if sink == nil {
		return nil, errors.New("bench: a traced mode needs a span sink")
	}
	return tracing.Setup(ctx, "bench", tracing.WithOTLPEndpoint(sink.URL), tracing.WithSampler(mode.Sampler))
}
