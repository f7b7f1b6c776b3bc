package events

// Header names carried on command requests and event messages. NATS headers
// are case-sensitive: use these constants, never a re-typed spelling.
const (
	// HeaderCommandID makes a command idempotent: the same id again returns
	// the first reply and changes nothing, also after a store restart.
	HeaderCommandID = "Storeloop-Command-Id"
	// HeaderCorrelationID is the id of the root mutation of a causal chain.
	HeaderCorrelationID = "Storeloop-Correlation-Id"
	// HeaderCausationID is the id of the event or command that caused this one.
	HeaderCausationID = "Storeloop-Causation-Id"
	// HeaderHop is the hop count of the command: 0 from outside, parent+1 from a rule.
	HeaderHop = "Storeloop-Hop"
	// HeaderRule names the rule whose action sent the command.
	HeaderRule = "Storeloop-Rule"
	// HeaderRuleVersion is the version of the deployed rule set of that
	// rule (extension), copied into meta.ruleVersion.
	HeaderRuleVersion = "Storeloop-Rule-Version"
	// HeaderEventID is set on every event message (same as meta.eventId).
	HeaderEventID = "Storeloop-Event-Id"

	// HeaderTraceParent and HeaderTraceState carry W3C trace context, lowercase.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)
