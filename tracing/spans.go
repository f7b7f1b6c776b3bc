package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/storeloop/storeloop/events"
)

// InstrumentationName names storeloop's tracer and meter.
const InstrumentationName = "github.com/storeloop/storeloop"

// natsSystem is the value of rpc.system.name and messaging.system.
const natsSystem = "nats"

// Tracer returns storeloop's tracer from the global TracerProvider. It is
// looked up on each call so that a provider installed later is used.
func Tracer() trace.Tracer {
	return otel.Tracer(InstrumentationName)
}

// recordsNothing reports whether the global TracerProvider is the no-op
// one [Setup] installs when nothing exports spans. A span started then
// records nothing whatever its name and attributes, so the Start
// functions below do not build them: they cost allocations on every
// command and event. The span returned is the no-op provider's all the
// same, carrying the caller's span context on, so propagation is
// unchanged.
func recordsNothing() bool {
	_, ok := otel.GetTracerProvider().(noop.TracerProvider)
	return ok
}

// StartCommandClient starts the span of a command request sent to the store
// (SpanKindClient, named store.<cmd>). bucket may be empty for commands that
// name no single bucket (buckets, tx).
func StartCommandClient(ctx context.Context, cmd, bucket string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if recordsNothing() {
		return noop.Tracer{}.Start(ctx, "")
	}
	return start(ctx, "store."+cmd, trace.SpanKindClient, commandAttrs(cmd, bucket), attrs)
}

// StartCommandServer starts the store node's span for a command it handles
// (SpanKindServer). Pass the context returned by [Extract] on the request
// headers so the span joins the caller's trace.
func StartCommandServer(ctx context.Context, cmd, bucket string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if recordsNothing() {
		return noop.Tracer{}.Start(ctx, "")
	}
	return start(ctx, "store."+cmd, trace.SpanKindServer, commandAttrs(cmd, bucket), attrs)
}

// StartAppend starts the span of appending an event to the stream on subject
// (SpanKindProducer). Inject its context into the event message.
func StartAppend(ctx context.Context, subject string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if recordsNothing() {
		return noop.Tracer{}.Start(ctx, "")
	}
	return start(ctx, "publish "+subject, trace.SpanKindProducer, []attribute.KeyValue{
		semconv.MessagingSystemKey.String(natsSystem),
		semconv.MessagingDestinationName(subject),
		semconv.MessagingOperationName("publish"),
		semconv.MessagingOperationTypeSend,
	}, attrs)
}

// StartDelivery starts a rule node's span for one delivery of an event
// (SpanKindConsumer). Pass the context returned by [Extract] on the event
// headers so the span is a child of the append that produced the event.
func StartDelivery(ctx context.Context, subject, ruleSet string, streamSeq, deliveryCount uint64, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if recordsNothing() {
		return noop.Tracer{}.Start(ctx, "")
	}
	return start(ctx, "process "+subject, trace.SpanKindConsumer, []attribute.KeyValue{
		semconv.MessagingSystemKey.String(natsSystem),
		semconv.MessagingDestinationName(subject),
		semconv.MessagingOperationName("process"),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingConsumerGroupName(ruleSet),
		AttrRuleSet.String(ruleSet),
		AttrStreamSeq.Int64(int64(streamSeq)),
		AttrDeliveryCount.Int64(int64(deliveryCount)),
	}, attrs)
}

// StartRule starts the span of one rule's condition evaluation and actions
// for a delivered event (SpanKindInternal, named rule <ruleID>).
func StartRule(ctx context.Context, ruleID string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if recordsNothing() {
		return noop.Tracer{}.Start(ctx, "")
	}
	return start(ctx, "rule "+ruleID, trace.SpanKindInternal, []attribute.KeyValue{AttrRule.String(ruleID)}, attrs)
}

// RecordError marks span as failed with err: an exception event, the error
// status, and error.type (the contract code for an *events.Error). A nil err
// does nothing.
func RecordError(span trace.Span, err error) {
	if err == nil {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
}

func commandAttrs(cmd, bucket string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		semconv.RPCSystemNameKey.String(natsSystem),
		semconv.RPCMethod("store." + cmd),
		AttrOp.String(cmd),
	}
	if bucket != "" {
		attrs = append(attrs, AttrBucket.String(bucket))
	}
	return attrs
}

func start(ctx context.Context, name string, kind trace.SpanKind, base, extra []attribute.KeyValue) (context.Context, trace.Span) {
	return Tracer().Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(base...), trace.WithAttributes(extra...))
}

// errorType names err for error.type and metric outcomes: the contract code
// when err is an *events.Error, else the Go type as semconv does.
func errorType(err error) string {
	if e, ok := errors.AsType[*events.Error](err); ok {
		return string(e.Code)
	}
	return semconv.ErrorType(err).Value.AsString()
}
