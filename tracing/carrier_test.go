package tracing

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/internal/natstest"
)

func TestHeaderCarrierGet(t *testing.T) {
	tests := []struct {
		name   string
		header nats.Header
		key    string
		want   string
	}{
		{"lowercase", nats.Header{"traceparent": {"a"}}, "traceparent", "a"},
		{"capitalized on the wire", nats.Header{"Traceparent": {"b"}}, "traceparent", "b"},
		{"uppercase on the wire", nats.Header{"TRACEPARENT": {"c"}}, "traceparent", "c"},
		{"mixed-case lookup", nats.Header{"traceparent": {"d"}}, "TraceParent", "d"},
		{"first value wins", nats.Header{"traceparent": {"e", "f"}}, "traceparent", "e"},
		{"missing", nats.Header{"tracestate": {"x=1"}}, "traceparent", ""},
		{"empty value list", nats.Header{"traceparent": {}}, "traceparent", ""},
		{"nil header", nil, "traceparent", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HeaderCarrier(tt.header).Get(tt.key); got != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestHeaderCarrierSet(t *testing.T) {
	tests := []struct {
		name   string
		header nats.Header
		key    string
		want   nats.Header
	}{
		{"new key", nats.Header{}, "traceparent", nats.Header{"traceparent": {"v"}}},
		{"key lowercased", nats.Header{}, "Traceparent", nats.Header{"traceparent": {"v"}}},
		{"replaces same key", nats.Header{"traceparent": {"old", "older"}}, "traceparent", nats.Header{"traceparent": {"v"}}},
		{"replaces other case", nats.Header{"Traceparent": {"old"}, "TRACEPARENT": {"old"}}, "traceparent", nats.Header{"traceparent": {"v"}}},
		{"keeps other headers", nats.Header{"Storeloop-Hop": {"2"}}, "tracestate", nats.Header{"Storeloop-Hop": {"2"}, "tracestate": {"v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			HeaderCarrier(tt.header).Set(tt.key, "v")
			if !equalHeader(tt.header, tt.want) {
				t.Errorf("header = %v, want %v", tt.header, tt.want)
			}
		})
	}
}

func TestHeaderCarrierKeys(t *testing.T) {
	got := HeaderCarrier(nats.Header{"traceparent": {"a"}, "Storeloop-Hop": {"1"}}).Keys()
	slices.Sort(got)
	if want := []string{"Storeloop-Hop", "traceparent"}; !slices.Equal(got, want) {
		t.Errorf("Keys() = %v, want %v", got, want)
	}
}

func TestExtract(t *testing.T) {
	setup(t)
	tests := []struct {
		name   string
		header nats.Header
		want   trace.SpanContext // the zero value: no remote parent
	}{
		{"valid", nats.Header{"traceparent": {remoteTraceparent}}, remoteParent},
		{"valid, other case", nats.Header{"Traceparent": {remoteTraceparent}}, remoteParent},
		{"missing", nats.Header{"Storeloop-Hop": {"1"}}, trace.SpanContext{}},
		{"nil header", nil, trace.SpanContext{}},
		{"garbage", nats.Header{"traceparent": {"not a traceparent"}}, trace.SpanContext{}},
		{"zero trace id", nats.Header{"traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}, trace.SpanContext{}},
		{"zero span id", nats.Header{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}}, trace.SpanContext{}},
		{"version ff", nats.Header{"traceparent": {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, trace.SpanContext{}},
		{"short", nats.Header{"traceparent": {"00-4bf92f35-00f067aa-01"}}, trace.SpanContext{}},
		{"uppercase hex", nats.Header{"traceparent": {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"}}, trace.SpanContext{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := trace.SpanContextFromContext(Extract(context.Background(), tt.header))
			if !got.Equal(tt.want) {
				t.Errorf("extracted %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInjectWithoutSpanLeavesHeaderNil(t *testing.T) {
	setup(t)
	msg := &nats.Msg{Subject: "bucket.orders.inserted"}
	Inject(context.Background(), msg)
	if msg.Header != nil {
		t.Errorf("Header = %v, want nil", msg.Header)
	}
}

func TestInjectKeepsOtherHeaders(t *testing.T) {
	setup(t)
	msg := nats.NewMsg("store.insert")
	msg.Header.Set("Storeloop-Hop", "3")
	msg.Header.Set("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	Inject(trace.ContextWithRemoteSpanContext(context.Background(), remoteParent), msg)
	want := nats.Header{"Storeloop-Hop": {"3"}, "traceparent": {remoteTraceparent}}
	if !equalHeader(msg.Header, want) {
		t.Errorf("Header = %v, want %v", msg.Header, want)
	}
}

// TestInjectExtractOverNATS sends trace context through a real server, in
// both spellings a client may use, and checks the receiver continues it.
func TestInjectExtractOverNATS(t *testing.T) {
	exp := record(t)
	nc := natstest.Connect(t, natstest.Server(t))
	sub, err := nc.SubscribeSync("bucket.orders.>")
	if err != nil {
		t.Fatal(err)
	}

	ctx, producer := StartAppend(context.Background(), "bucket.orders.inserted")
	msg := nats.NewMsg("bucket.orders.inserted")
	Inject(ctx, msg)
	producer.End()
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	// A client in another language that capitalizes header names.
	foreign := nats.NewMsg("bucket.orders.updated")
	foreign.Header.Set("Traceparent", remoteTraceparent)
	if err := nc.PublishMsg(foreign); err != nil {
		t.Fatal(err)
	}

	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Header["traceparent"]; !ok {
		t.Errorf("received header keys %v, want lowercase traceparent", HeaderCarrier(got.Header).Keys())
	}
	_, consumer := StartDelivery(Extract(context.Background(), got.Header), got.Subject, "commerce", 1, 1)
	consumer.End()
	assertChild(t, spanNamed(t, exp, "publish bucket.orders.inserted", trace.SpanKindProducer),
		spanNamed(t, exp, "process bucket.orders.inserted", trace.SpanKindConsumer))

	got, err = sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sc := trace.SpanContextFromContext(Extract(context.Background(), got.Header)); !sc.Equal(remoteParent) {
		t.Errorf("extracted %v from %v, want %v", sc, got.Header, remoteParent)
	}
}

func equalHeader(a, b nats.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
