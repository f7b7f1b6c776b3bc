package client

import (
	"context"

	"github.com/storeloop/storeloop/events"
)

// CausalContext is the causal chain a command continues: it is sent in the
// Storeloop-Correlation-Id, -Causation-Id, -Hop and -Rule headers and ends up
// in the meta of the events the command produces.
type CausalContext struct {
	CorrelationID string
	CausationID   string
	Hop           int
	RuleID        string
	RuleVersion   int // of a deployed rule set; 0: none (Storeloop-Rule-Version)
}

// CausedBy returns the causal context of a write that rule ruleID makes in
// reaction to ev: same correlation, caused by ev, one hop further.
func CausedBy(ev *events.Event, ruleID string) CausalContext {
	corr := ev.Meta.CorrelationID
	if corr == "" {
		corr = ev.Meta.EventID
	}
	return CausalContext{
		CorrelationID: corr,
		CausationID:   ev.Meta.EventID,
		Hop:           ev.Meta.Hop + 1,
		RuleID:        ruleID,
	}
}

type (
	causeKey     struct{}
	commandIDKey struct{}
)

// WithCause returns a context whose commands carry cause.
func WithCause(ctx context.Context, cause CausalContext) context.Context {
	return context.WithValue(ctx, causeKey{}, cause)
}

// CauseFrom returns the causal context set by [WithCause].
func CauseFrom(ctx context.Context) (CausalContext, bool) {
	c, ok := ctx.Value(causeKey{}).(CausalContext)
	return c, ok
}

// WithCommandID returns a context whose next mutation uses id as its
// Storeloop-Command-Id instead of a fresh one, so sending it again (after a
// crash, or on a redelivered event) returns the first reply and changes
// nothing. Give each logical command its own id.
func WithCommandID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, commandIDKey{}, id)
}

// CommandIDFrom returns the command id set by [WithCommandID].
func CommandIDFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(commandIDKey{}).(string)
	return id, ok && id != ""
}
