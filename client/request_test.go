package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
)

// responder is a stand-in command handler on a real NATS server: it records
// the requests it receives and answers each with the next reply of a script
// (a nil reply means: do not answer).
type responder struct {
	mu   sync.Mutex
	reqs []*nats.Msg
}

func (r *responder) requests() []*nats.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*nats.Msg(nil), r.reqs...)
}

// serve answers requests on subject with the replies in order; the last one
// repeats.
func serve(t *testing.T, nc *nats.Conn, subject string, replies ...*events.Reply) *responder {
	t.Helper()
	r := &responder{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		r.mu.Lock()
		r.reqs = append(r.reqs, m)
		reply := replies[min(len(r.reqs), len(replies))-1]
		r.mu.Unlock()
		if reply == nil {
			return
		}
		data, _ := json.Marshal(reply)
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return r
}

var (
	okReply          = &events.Reply{Result: json.RawMessage(`{"id":1,"_version":1}`)}
	unavailableReply = &events.Reply{Error: &events.Error{Code: events.CodeUnavailable, Message: "store is recovering"}}
	validationReply  = &events.Reply{Error: &events.Error{Code: events.CodeValidation,
		Issues: []events.Issue{{Field: "total", Message: "must be >= 0", Code: "min"}}}}
)

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		replies  []*events.Reply
		retries  int
		wantReqs int
		wantCode events.Code // "" for success
	}{
		{"unavailable then ok", []*events.Reply{unavailableReply, unavailableReply, okReply}, 3, 3, ""},
		{"no reply then ok", []*events.Reply{nil, okReply}, 3, 2, ""},
		{"unavailable past the retries", []*events.Reply{unavailableReply}, 2, 3, events.CodeUnavailable},
		{"no reply past the retries", []*events.Reply{nil}, 1, 2, events.CodeUnavailable},
		{"validation is not retried", []*events.Reply{validationReply, okReply}, 3, 1, events.CodeValidation},
		{"retries disabled", []*events.Reply{unavailableReply, okReply}, 0, 1, events.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := natstest.Connect(t, natstest.Server(t))
			r := serve(t, nc, "store.insert", tt.replies...)
			// The retries alone: no failover wait past them.
			c, err := client.New(nc, client.WithRetries(tt.retries), client.WithTimeout(200*time.Millisecond), client.WithFailoverWait(0))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := c.Bucket("orders").Insert(ctxT(t), events.Record{"total": 1.0})
			if tt.wantCode == "" {
				if err != nil || rec["id"] != 1.0 {
					t.Fatalf("insert = %v, %v; want the record", rec, err)
				}
			} else if events.CodeOf(err) != tt.wantCode {
				t.Fatalf("insert err = %v, want code %s", err, tt.wantCode)
			}
			reqs := r.requests()
			if len(reqs) != tt.wantReqs {
				t.Fatalf("store saw %d requests, want %d", len(reqs), tt.wantReqs)
			}
			id := reqs[0].Header.Get(events.HeaderCommandID)
			if id == "" {
				t.Fatal("write sent without a command id")
			}
			for i, m := range reqs {
				if got := m.Header.Get(events.HeaderCommandID); got != id {
					t.Fatalf("attempt %d command id %q, want the first attempt's %q", i, got, id)
				}
			}
		})
	}
}

func TestNoResponders(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	c, err := client.New(nc, client.WithRetries(1), client.WithFailoverWait(0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Bucket("orders").Get(ctxT(t), 1)
	var e *events.Error
	if !errors.As(err, &e) || e.Code != events.CodeUnavailable || !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("err = %v, want unavailable wrapping nats.ErrNoResponders", err)
	}
	if want := "unavailable: no store node is serving store.get: nats: no responders available for request"; err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
}

func TestCallerContextEndsRetries(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	serve(t, nc, "store.get", nil) // never answers
	c, err := client.New(nc, client.WithRetries(100), client.WithTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	_, err = c.Bucket("orders").Get(ctx, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
}

func TestRequestHeaders(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	insert := serve(t, nc, "app.insert", okReply)
	get := serve(t, nc, "app.get", &events.Reply{Result: json.RawMessage("null")})

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	c, err := client.New(nc, client.WithCommandPrefix("app"), client.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	ctx := client.WithCause(ctxT(t), client.CausalContext{CorrelationID: "corr-1", CausationID: "ev-9", Hop: 2, RuleID: "loyalty"})
	ctx = client.WithCommandID(ctx, "cmd-1")
	if _, err := c.Bucket("orders").Insert(ctx, events.Record{}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Bucket("orders").Get(ctx, "k"); err != nil || got != nil {
		t.Fatalf("get = %v, %v; want nil, nil", got, err)
	}

	h := insert.requests()[0].Header
	for k, want := range map[string]string{
		events.HeaderCommandID:     "cmd-1",
		events.HeaderCorrelationID: "corr-1",
		events.HeaderCausationID:   "ev-9",
		events.HeaderHop:           "2",
		events.HeaderRule:          "loyalty",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if got := get.requests()[0].Header.Get(events.HeaderCommandID); got != "" {
		t.Errorf("get carries command id %q; reads carry none", got)
	}

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	s := spans[0]
	if s.Name() != "store.insert" || s.SpanKind() != trace.SpanKindClient {
		t.Fatalf("span = %q kind %v, want store.insert client", s.Name(), s.SpanKind())
	}
	tp0 := h.Get(events.HeaderTraceParent)
	if want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"; tp0 != want {
		t.Fatalf("traceparent = %q, want %q (lowercase key, the client span)", tp0, want)
	}
	if _, ok := h["Traceparent"]; ok {
		t.Fatalf("header has a canonicalised Traceparent key")
	}
}

func TestSpanRecordsStoreError(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	serve(t, nc, "store.insert", validationReply)
	rec := tracetest.NewSpanRecorder()
	c, err := client.New(nc, client.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Bucket("orders").Insert(ctxT(t), events.Record{})
	if want := "validation: total: must be >= 0 (min)"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	s := rec.Ended()[0]
	if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "validation") {
		t.Fatalf("span status = %+v, want error", s.Status())
	}
}

func TestMalformedReply(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	sub, err := nc.Subscribe("store.count", func(m *nats.Msg) { _ = m.Respond([]byte("not json")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bucket("orders").Count(ctxT(t), nil); !errors.Is(err, events.ErrInternal) {
		t.Fatalf("err = %v, want internal", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	for name, opt := range map[string]client.Option{
		"prefix":  client.WithCommandPrefix(""),
		"timeout": client.WithTimeout(0),
		"retries": client.WithRetries(-1),
		"stream":  client.WithStream(""),
	} {
		if _, err := client.New(nc, opt); err == nil {
			t.Errorf("%s: bad option accepted", name)
		}
	}
	if _, err := client.Connect("nats://127.0.0.1:1"); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("connect to a closed port: err = %v, want unavailable", err)
	}
}
