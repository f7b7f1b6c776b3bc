package e2e

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/tracing"
)

// inProcess is a store node, a client and a rule runner in this process,
// all tracing into one in-memory exporter.
type inProcess struct {
	t     *testing.T
	ctx   context.Context
	cl    *client.Client
	js    jetstream.JetStream
	spans *tracetest.InMemoryExporter
}

var countersDef = events.BucketDef{
	Bucket: "counters",
	Key:    "id",
	Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeString, Required: true},
		"n":  {Type: events.TypeNumber, Default: 0.0},
	},
}

func startInProcess(t *testing.T) *inProcess {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	spans := tracetest.NewInMemoryExporter()
	shutdown, err := tracing.Setup(ctx, "e2e", tracing.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })

	url := storetest.Start(t)
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Define(ctx, countersDef); err != nil {
		t.Fatal(err)
	}
	return &inProcess{t: t, ctx: ctx, cl: cl, js: js, spans: spans}
}

// run runs set until the test ends, retrying failures after 10ms.
func (p *inProcess) run(set *rulenode.RuleSet) {
	p.t.Helper()
	r := rulenode.NewRunner(p.js, p.cl, set, rulenode.WithRetryBackoff(10*time.Millisecond), rulenode.WithAckWait(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	p.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			p.t.Errorf("runner: %v", err)
		}
	})
}

// ended returns the ended spans that keep holds, in the order they ended.
func (p *inProcess) ended(keep func(tracetest.SpanStub) bool) []tracetest.SpanStub {
	var got []tracetest.SpanStub
	for _, s := range p.spans.GetSpans() {
		if keep(s) {
			got = append(got, s)
		}
	}
	return got
}

// waitSpans waits until n spans that keep holds have ended and returns
// them (all of them, perhaps more than n).
func (p *inProcess) waitSpans(n int, keep func(tracetest.SpanStub) bool) []tracetest.SpanStub {
	p.t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got := p.ended(keep)
		if len(got) >= n {
			return got
		}
		select {
		case <-p.ctx.Done():
			p.t.Fatalf("%d of %d spans ended before the deadline: %v", len(got), n, names(got))
		case <-tick.C:
		}
	}
}

// childrenOf returns the ended spans whose parent is s.
func (p *inProcess) childrenOf(s tracetest.SpanStub) []tracetest.SpanStub {
	var kids []tracetest.SpanStub
	for _, k := range p.spans.GetSpans() {
		if k.Parent.SpanID() == s.SpanContext.SpanID() {
			kids = append(kids, k)
		}
	}
	return kids
}

func consumerOf(subject string) func(tracetest.SpanStub) bool {
	return func(s tracetest.SpanStub) bool {
		return s.SpanKind == trace.SpanKindConsumer && s.Name == "process "+subject
	}
}

func attr(s tracetest.SpanStub, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func names(spans []tracetest.SpanStub) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

// TestRedeliveryOnConsumerSpan fails a Go rule on the first delivery of an
// event: the event comes back, and each delivery has its CONSUMER span,
// the first with the error, both children of the one append.
func TestRedeliveryOnConsumerSpan(t *testing.T) {
	p := startInProcess(t)
	errFirst := errors.New("downstream not ready")
	var calls atomic.Int32
	set, err := rulenode.NewRuleSet("flaky", &rulenode.Rule{
		ID: "fail-once",
		On: []string{"bucket.counters.inserted"},
		Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
			if calls.Add(1) == 1 {
				return errFirst
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.run(set)
	if _, err := p.cl.Bucket("counters").Insert(p.ctx, events.Record{"id": "c"}); err != nil {
		t.Fatal(err)
	}

	deliveries := p.waitSpans(2, consumerOf("bucket.counters.inserted"))
	if err := p.cl.Settle(p.ctx, client.SettleRuleSets("flaky")); err != nil {
		t.Fatal(err)
	}
	if n := len(p.ended(consumerOf("bucket.counters.inserted"))); n != 2 || calls.Load() != 2 {
		t.Fatalf("%d deliveries and %d rule calls after settling, want 2 and 2", n, calls.Load())
	}
	producer := p.waitSpans(1, func(s tracetest.SpanStub) bool { return s.Name == "publish bucket.counters.inserted" })[0]
	wants := []struct {
		count  int64
		status codes.Code
		desc   string
	}{
		{1, codes.Error, errFirst.Error()},
		{2, codes.Unset, ""},
	}
	for i, want := range wants {
		d := deliveries[i]
		if got := attr(d, tracing.AttrDeliveryCount).AsInt64(); got != want.count {
			t.Errorf("delivery %d: delivery_count = %d, want %d", i+1, got, want.count)
		}
		if got, first := attr(d, tracing.AttrStreamSeq).AsInt64(), attr(deliveries[0], tracing.AttrStreamSeq).AsInt64(); got != first || got == 0 {
			t.Errorf("delivery %d: stream_seq = %d, want %d for both", i+1, got, first)
		}
		if d.Status.Code != want.status || !hasDesc(d.Status.Description, want.desc) {
			t.Errorf("delivery %d: status %v %q, want %v containing %q", i+1, d.Status.Code, d.Status.Description, want.status, want.desc)
		}
		if d.Parent.SpanID() != producer.SpanContext.SpanID() || d.SpanContext.TraceID() != producer.SpanContext.TraceID() {
			t.Errorf("delivery %d: parent %v, want the append %v", i+1, d.Parent.SpanID(), producer.SpanContext.SpanID())
		}
		kids := p.childrenOf(d)
		if len(kids) != 1 || kids[0].Name != "rule fail-once" || kids[0].Status.Code != want.status {
			t.Errorf("delivery %d: children %v, want one rule fail-once span with status %v", i+1, names(kids), want.status)
		}
	}
}

// hasDesc reports whether a status description holds want ("" wants none).
func hasDesc(got, want string) bool {
	if want == "" {
		return got == ""
	}
	return strings.Contains(got, want)
}

// TestMaxHopOnConsumerSpan runs a rule that triggers itself, in a set with
// maxHop 2: the deliveries of hops 0 and 1 run it, the delivery of the
// hop-2 event stops the loop, and its CONSUMER span says so with the error
// status and an exception event, and has no rule span under it.
func TestMaxHopOnConsumerSpan(t *testing.T) {
	p := startInProcess(t)
	set, err := rulenode.NewRuleSet("looper", &rulenode.Rule{
		ID:     "bump",
		On:     []string{"bucket.counters.*"},
		Writes: []string{"bucket.counters.updated"},
		Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
			_, err := env.Store.Upsert(ctx, "counters", "c", nil, map[string]float64{"n": 1})
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	set.MaxHop = 2
	p.run(set)
	if _, err := p.cl.Bucket("counters").Insert(p.ctx, events.Record{"id": "c"}); err != nil {
		t.Fatal(err)
	}
	if err := p.cl.Settle(p.ctx, client.SettleRuleSets("looper")); err != nil {
		t.Fatal(err)
	}
	if rec, err := p.cl.Bucket("counters").Get(p.ctx, "c"); err != nil || rec["n"] != 2.0 {
		t.Fatalf("counter = %v (%v), want n 2: hops 0 and 1 bump it, hop 2 does not", rec, err)
	}

	deliveries := p.waitSpans(3, func(s tracetest.SpanStub) bool { return s.SpanKind == trace.SpanKindConsumer })
	slices.SortFunc(deliveries, func(a, b tracetest.SpanStub) int {
		return int(attr(a, tracing.AttrStreamSeq).AsInt64() - attr(b, tracing.AttrStreamSeq).AsInt64())
	})
	if len(deliveries) != 3 {
		t.Fatalf("%d deliveries, want 3: %v", len(deliveries), names(deliveries))
	}
	for i, d := range deliveries[:2] {
		kids := p.childrenOf(d)
		if d.Status.Code != codes.Unset || len(kids) != 1 || kids[0].Name != "rule bump" || attr(kids[0], tracing.AttrHop).AsInt64() != int64(i) {
			t.Errorf("hop %d delivery: status %v, children %v; want unset and one rule bump span at hop %d", i, d.Status, names(kids), i)
		}
	}
	stopped := deliveries[2]
	const wantErr = "hop 2 reached the rule set's maxHop 2: rules [bump] not run"
	if stopped.Status.Code != codes.Error || stopped.Status.Description != wantErr {
		t.Errorf("hop 2 delivery: status %v %q, want error %q", stopped.Status.Code, stopped.Status.Description, wantErr)
	}
	if len(stopped.Events) != 1 || stopped.Events[0].Name != "exception" {
		t.Errorf("hop 2 delivery: events %v, want one exception", stopped.Events)
	}
	if kids := p.childrenOf(stopped); len(kids) != 0 {
		t.Errorf("hop 2 delivery: children %v, want none (no rule ran)", names(kids))
	}
}
