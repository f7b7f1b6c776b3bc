package rulenode

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// The dead-letter stream: events a rule set gave up on, one JSON
// [DeadLetter] per message on storeloop.dlq.<ruleSet>.<reason>. The store
// node creates it; a runner waits for it as for the event stream.
const (
	DefaultDeadLetterStream = events.DefaultDeadLetterStream
	DeadLetterSubjectPrefix = events.DeadLetterSubjectPrefix
)

// Reasons an event is dead-lettered. They are a small fixed set: they end
// the dead-letter subject and label metrics.
const (
	// ReasonMaxHop: the event's hop count reached the rule set's MaxHop, so a
	// rule that would have acted on it did not (a loop was cut).
	ReasonMaxHop = "max_hop"
	// ReasonFailed: a rule kept failing for MaxDeliver deliveries.
	ReasonFailed = "failed"
	// ReasonRejected: a rule failed in a way retrying cannot change (its
	// condition or templates do not evaluate on this event, or the store
	// rejected the command as invalid).
	ReasonRejected = "rejected"
	// ReasonUndecodable: the message is not an event.
	ReasonUndecodable = "undecodable"
	// ReasonMaxDeliver: the event was delivered more than MaxDeliver times
	// without an outcome (the rule node working on it crashed or hung), so
	// it is not run again.
	ReasonMaxDeliver = "max_deliver"
	// ReasonForeign: the message does not carry a valid proof of a trusted
	// store (package events/proof): the store did not write it, or it was
	// altered or published again. It is not acted on.
	ReasonForeign = "foreign"
)

// DeadLetter is the body of a message on the dead-letter stream.
type DeadLetter struct {
	RuleSet string `json:"ruleSet"`
	// RuleID is the rule that failed, or for max_hop the first rule that
	// would have acted; empty when no single rule is to blame.
	RuleID        string `json:"ruleId,omitempty"`
	Subject       string `json:"subject"`
	StreamSeq     uint64 `json:"streamSeq"`
	Deliveries    uint64 `json:"deliveries"`
	Reason        string `json:"reason"`
	Error         string `json:"error,omitempty"`
	EventID       string `json:"eventId,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	Hop           int    `json:"hop"`
	// Payload is the event body as it was in the stream; PayloadBase64
	// holds it instead when it is not JSON.
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 []byte          `json:"payloadBase64,omitempty"`
	Time          time.Time       `json:"time"`

	// body is the event body, set into Payload or PayloadBase64 only when
	// the letter is published: checking that it is JSON costs every event
	// otherwise, and few are dead-lettered.
	body []byte
}

// DeadLetterSubject returns storeloop.dlq.<ruleSet>.<reason>.
func DeadLetterSubject(ruleSet, reason string) string {
	return DeadLetterSubjectPrefix + "." + ruleSet + "." + reason
}

// setPayload stores body as Payload when it is JSON, else as PayloadBase64.
func (d *DeadLetter) setPayload(body []byte) {
	if json.Valid(body) {
		d.Payload = json.RawMessage(body)
	} else {
		d.PayloadBase64 = body
	}
}

// publishDeadLetter appends d. The message id makes the append idempotent
// within the stream's duplicate window, so a rule node that crashes
// between this append and terminating the event does not record it twice.
func publishDeadLetter(ctx context.Context, js jetstream.JetStream, d *DeadLetter) error {
	if d.body != nil {
		d.setPayload(d.body)
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("rulenode: encode dead letter: %w", err)
	}
	id := fmt.Sprintf("%s/%d/%s/%s", d.RuleSet, d.StreamSeq, d.RuleID, d.Reason)
	if _, err := js.Publish(ctx, DeadLetterSubject(d.RuleSet, d.Reason), body, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("rulenode: publish dead letter: %w", err)
	}
	return nil
}
