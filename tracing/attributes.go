package tracing

import "go.opentelemetry.io/otel/attribute"

// Span attribute keys for storeloop's own fields. The messaging and RPC ones
// come from the OpenTelemetry semantic conventions (see spans.go).
const (
	AttrBucket        = attribute.Key("storeloop.bucket")
	AttrOp            = attribute.Key("storeloop.op")
	AttrKey           = attribute.Key("storeloop.key")
	AttrRule          = attribute.Key("storeloop.rule")
	AttrHop           = attribute.Key("storeloop.hop")
	AttrCorrelationID = attribute.Key("storeloop.correlation_id")
	AttrCausationID   = attribute.Key("storeloop.causation_id")
	AttrCommandID     = attribute.Key("storeloop.command_id")
	AttrRuleSet       = attribute.Key("storeloop.rule_set")
	// AttrStreamSeq is the JetStream stream sequence of a delivered event.
	AttrStreamSeq = attribute.Key("storeloop.stream_seq")
	// AttrDeliveryCount is how many times JetStream has delivered the event (1 = first).
	AttrDeliveryCount = attribute.Key("storeloop.delivery_count")
)
