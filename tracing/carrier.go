package tracing

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts NATS message headers to a propagation.TextMapCarrier.
// NATS headers are a case-sensitive map, while the W3C keys are defined
// lowercase and other clients may send "Traceparent": Set writes lowercase
// keys and Get matches any case.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key, matched case-insensitively, or "".
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set stores value under the lowercase key, replacing every existing value
// whose key differs only in case, so a message never carries two trace parents.
func (c HeaderCarrier) Set(key, value string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[strings.ToLower(key)] = []string{value}
}

// Keys lists the header keys as they are spelled on the message.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx into msg's headers with the global
// propagator, creating the header map only when there is something to carry.
func Inject(ctx context.Context, msg *nats.Msg) {
	h := msg.Header
	if h == nil {
		h = nats.Header{}
	}
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(h))
	if len(h) > 0 {
		msg.Header = h
	}
}

// Extract returns ctx with the remote trace context (and baggage) carried by
// h. Missing or malformed headers leave ctx unchanged.
func Extract(ctx context.Context, h nats.Header) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier(h))
}
