package tracing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
)

func TestSpanHelpers(t *testing.T) {
	exp := record(t)
	type start func(context.Context) (context.Context, trace.Span)
	tests := []struct {
		name      string
		start     start
		wantName  string
		wantKind  trace.SpanKind
		wantAttrs map[attribute.Key]attribute.Value
	}{
		{
			name: "command client",
			start: func(ctx context.Context) (context.Context, trace.Span) {
				return StartCommandClient(ctx, "insert", "orders")
			},
			wantName: "store.insert", wantKind: trace.SpanKindClient,
			wantAttrs: map[attribute.Key]attribute.Value{
				"rpc.system.name": attribute.StringValue("nats"), "rpc.method": attribute.StringValue("store.insert"),
				AttrOp: attribute.StringValue("insert"), AttrBucket: attribute.StringValue("orders"),
			},
		},
		{
			name: "command server, no bucket, extra attribute",
			start: func(ctx context.Context) (context.Context, trace.Span) {
				return StartCommandServer(ctx, "tx", "", AttrCommandID.String("c-1"))
			},
			wantName: "store.tx", wantKind: trace.SpanKindServer,
			wantAttrs: map[attribute.Key]attribute.Value{
				"rpc.system.name": attribute.StringValue("nats"), "rpc.method": attribute.StringValue("store.tx"),
				AttrOp: attribute.StringValue("tx"), AttrCommandID: attribute.StringValue("c-1"),
			},
		},
		{
			name: "append",
			start: func(ctx context.Context) (context.Context, trace.Span) {
				return StartAppend(ctx, "bucket.orders.updated")
			},
			wantName: "publish bucket.orders.updated", wantKind: trace.SpanKindProducer,
			wantAttrs: map[attribute.Key]attribute.Value{
				"messaging.system": attribute.StringValue("nats"), "messaging.destination.name": attribute.StringValue("bucket.orders.updated"),
				"messaging.operation.name": attribute.StringValue("publish"), "messaging.operation.type": attribute.StringValue("send"),
			},
		},
		{
			name: "delivery",
			start: func(ctx context.Context) (context.Context, trace.Span) {
				return StartDelivery(ctx, "bucket.orders.updated", "commerce", 42, 3)
			},
			wantName: "process bucket.orders.updated", wantKind: trace.SpanKindConsumer,
			wantAttrs: map[attribute.Key]attribute.Value{
				"messaging.system": attribute.StringValue("nats"), "messaging.destination.name": attribute.StringValue("bucket.orders.updated"),
				"messaging.operation.name": attribute.StringValue("process"), "messaging.operation.type": attribute.StringValue("process"),
				"messaging.consumer.group.name": attribute.StringValue("commerce"), AttrRuleSet: attribute.StringValue("commerce"),
				AttrStreamSeq: attribute.Int64Value(42), AttrDeliveryCount: attribute.Int64Value(3),
			},
		},
		{
			name: "rule",
			start: func(ctx context.Context) (context.Context, trace.Span) {
				return StartRule(ctx, "loyalty-on-ship", AttrHop.Int(2))
			},
			wantName: "rule loyalty-on-ship", wantKind: trace.SpanKindInternal,
			wantAttrs: map[attribute.Key]attribute.Value{AttrRule: attribute.StringValue("loyalty-on-ship"), AttrHop: attribute.IntValue(2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp.Reset()
			ctx, span := tt.start(context.Background())
			if got := trace.SpanFromContext(ctx); got != span {
				t.Error("returned context does not hold the span")
			}
			span.End()
			s := spanNamed(t, exp, tt.wantName, tt.wantKind)
			if got := attrMap(s.Attributes); fmt.Sprint(got) != fmt.Sprint(tt.wantAttrs) {
				t.Errorf("attributes = %v, want %v", got, tt.wantAttrs)
			}
			if s.InstrumentationScope.Name != InstrumentationName {
				t.Errorf("scope = %q, want %q", s.InstrumentationScope.Name, InstrumentationName)
			}
		})
	}
}

func TestRecordError(t *testing.T) {
	exp := record(t)
	tests := []struct {
		name       string
		err        error
		wantStatus codes.Code
		wantType   string // error.type; "" = absent
	}{
		{"nil", nil, codes.Unset, ""},
		{"contract error", fmt.Errorf("update: %w", events.Errorf(events.CodeNotFound, "orders/1")), codes.Error, "not_found"},
		{"other error", context.DeadlineExceeded, codes.Error, "context.deadlineExceededError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp.Reset()
			_, span := StartRule(context.Background(), "r")
			RecordError(span, tt.err)
			span.End()
			s := spanNamed(t, exp, "rule r", trace.SpanKindInternal)
			if s.Status.Code != tt.wantStatus {
				t.Errorf("status = %v, want %v", s.Status.Code, tt.wantStatus)
			}
			if got := attrMap(s.Attributes)["error.type"].AsString(); got != tt.wantType {
				t.Errorf("error.type = %q, want %q", got, tt.wantType)
			}
			wantEvents := 0
			if tt.err != nil {
				wantEvents = 1
				if s.Status.Description != tt.err.Error() {
					t.Errorf("status description = %q, want %q", s.Status.Description, tt.err.Error())
				}
			}
			if len(s.Events) != wantEvents || wantEvents == 1 && s.Events[0].Name != "exception" {
				t.Errorf("events = %v, want %d exception event(s)", s.Events, wantEvents)
			}
		})
	}
}

// TestCycleOverNATS follows one turn of the cycle across real NATS hops:
// client → (request) → store node → append → (event) → rule node → rule.
// Every span must be in one trace, each the child of the one before.
func TestCycleOverNATS(t *testing.T) {
	exp := record(t)
	nc := natstest.Connect(t, natstest.Server(t))

	// Rule node side: consume the event.
	events, err := nc.SubscribeSync("bucket.orders.>")
	if err != nil {
		t.Fatal(err)
	}
	// Store node side: serve store.insert and append an event.
	_, err = nc.Subscribe("store.insert", func(req *nats.Msg) {
		ctx, server := StartCommandServer(Extract(context.Background(), req.Header), "insert", "orders")
		defer server.End()
		ctx, appendSpan := StartAppend(ctx, "bucket.orders.inserted")
		ev := nats.NewMsg("bucket.orders.inserted")
		Inject(ctx, ev)
		err := nc.PublishMsg(ev)
		RecordError(appendSpan, err)
		appendSpan.End()
		RecordError(server, err)
		_ = req.Respond([]byte(`{"result":{}}`))
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx, client := StartCommandClient(context.Background(), "insert", "orders")
	req := nats.NewMsg("store.insert")
	Inject(ctx, req)
	if _, err := nc.RequestMsg(req, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	client.End()

	ev, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, delivery := StartDelivery(Extract(context.Background(), ev.Header), ev.Subject, "commerce", 1, 1)
	_, rule := StartRule(ctx, "audit")
	rule.End()
	delivery.End()

	if n := len(exp.GetSpans()); n != 5 {
		t.Fatalf("got %d spans, want client, server, producer, consumer, rule", n)
	}
	chain := []tracetest.SpanStub{
		spanNamed(t, exp, "store.insert", trace.SpanKindClient),
		spanNamed(t, exp, "store.insert", trace.SpanKindServer),
		spanNamed(t, exp, "publish bucket.orders.inserted", trace.SpanKindProducer),
		spanNamed(t, exp, "process bucket.orders.inserted", trace.SpanKindConsumer),
		spanNamed(t, exp, "rule audit", trace.SpanKindInternal),
	}
	if chain[0].Parent.IsValid() {
		t.Errorf("client span has parent %v, want a root", chain[0].Parent)
	}
	for i := 1; i < len(chain); i++ {
		assertChild(t, chain[i-1], chain[i])
	}
	for _, i := range []int{1, 3} { // the spans that crossed NATS
		if !chain[i].Parent.IsRemote() {
			t.Errorf("%s (%v): parent is not remote", chain[i].Name, chain[i].SpanKind)
		}
	}
}
