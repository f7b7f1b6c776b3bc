package rulenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// ErrNotRetryable is returned by [Runner.Retry] for a dead letter it cannot
// run again: its payload is not an event, it belongs to another rule set,
// names a rule the set lacks, or its event has no id to find the writes
// of earlier attempts by.
var ErrNotRetryable = errors.New("rulenode: dead letter cannot be retried")

// retrySep separates an action's command id from the token of a retry.
const retrySep = "~retry-"

// Retry runs, once and in this process, the rules the dead letter dl's
// event was given up on, and returns the ids of the rules it ran. A
// failed or rejected letter names its rule, which runs if its condition
// holds; a max_hop or max_deliver letter runs every rule of the set whose
// filter and condition match the event (hop counts are not checked: the
// operator asked for it).
//
// An earlier attempt may have applied some of a rule's actions before one
// failed. Those are not applied again: Retry first reads the event stream
// after the event for events caused by it under the rule, and an action
// whose command (by its id, [CommandID]) wrote one is skipped. Every other
// action is sent under a new command id, the original's with a retry
// token appended: the store answers an id it has seen with its first
// reply, so the original id would only return the original rejection. A
// command the store refused changed nothing, so sending it again under a
// new id cannot double it; one that was applied left events naming its
// id, which the next retry finds. Two retries of the same letter must not
// run at once. Publish and log actions run again (a publish with the
// retry's command id), and so does a write that succeeded without an
// event (a delete of a missing key).
//
// The writes carry the event's causal chain as the runner's would. The
// caller deletes the dead letter when Retry returns nil.
func (r *Runner) Retry(ctx context.Context, dl *DeadLetter) ([]string, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if dl.RuleSet != r.set.Name {
		return nil, fmt.Errorf("%w: it is rule set %s's, not %s's", ErrNotRetryable, dl.RuleSet, r.set.Name)
	}
	if dl.Reason == ReasonUndecodable || len(dl.Payload) == 0 {
		return nil, fmt.Errorf("%w: its payload is not an event", ErrNotRetryable)
	}
	ev, err := events.DecodeEvent(dl.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRetryable, err)
	}
	if ev.Meta.EventID == "" {
		return nil, fmt.Errorf("%w: the event has no id", ErrNotRetryable)
	}
	ev.Meta.Seq = dl.StreamSeq

	e := &evalEvent{ev: ev}
	rules, err := r.retryRules(ctx, dl, e)
	if err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, nil
	}
	applied, err := r.appliedCommands(ctx, ev)
	if err != nil {
		return nil, err
	}
	suffix := retrySep + uuid.NewString()
	log := r.o.logger.With("ruleSet", r.set.Name, "subject", dl.Subject, "streamSeq", dl.StreamSeq, "retry", suffix)
	var ran []string
	var errs []error
	for _, rule := range rules {
		sc := newStoreClient(r.cl, r.set.Name, rule.ID, dl.StreamSeq)
		sc.suffix = suffix
		st := &retryStore{storeClient: sc, applied: applied}
		if err := r.runRule(ctx, log, r.set, rule, e, st); err != nil {
			errs = append(errs, err)
			continue
		}
		ran = append(ran, rule.ID)
	}
	return ran, errors.Join(errs...)
}

// retryRules returns the rules dl asks to run again on e's event.
func (r *Runner) retryRules(ctx context.Context, dl *DeadLetter, e *evalEvent) ([]*Rule, error) {
	if dl.RuleID == "" || dl.Reason == ReasonMaxHop || dl.Reason == ReasonMaxDeliver {
		rules, failed := r.set.eligible(ctx, e)
		if len(failed) > 0 {
			return nil, failed[0].err
		}
		return rules, nil
	}
	for _, rule := range r.set.Rules {
		if rule.ID != dl.RuleID {
			continue
		}
		if rule.Temporal != nil {
			return nil, fmt.Errorf("%w: rule %q is temporal: a dead letter holds one event, not its match", ErrNotRetryable, rule.ID)
		}
		ok, err := rule.eligible(ctx, e)
		if err != nil || !ok {
			return nil, err
		}
		return []*Rule{rule}, nil
	}
	return nil, fmt.Errorf("%w: rule set %s has no rule %q", ErrNotRetryable, r.set.Name, dl.RuleID)
}

// appliedCommands returns the command ids of the events caused by ev (any
// rule's), read from the event stream after ev.
func (r *Runner) appliedCommands(ctx context.Context, ev *events.Event) (map[string]bool, error) {
	applied := map[string]bool{}
	s, err := r.js.Stream(ctx, r.o.stream)
	if err != nil {
		return nil, fmt.Errorf("rulenode: retry: event stream %s: %w", r.o.stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	if last <= ev.Meta.Seq {
		return applied, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.EventSubjectPrefix + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    ev.Meta.Seq + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("rulenode: retry: read %s: %w", r.o.stream, err)
	}
	it, err := c.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, fmt.Errorf("rulenode: retry: read %s: %w", r.o.stream, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("rulenode: retry: read %s: %w", r.o.stream, err)
		}
		var body struct {
			Meta struct {
				CausationID string `json:"causationId"`
				CommandID   string `json:"commandId"`
			} `json:"meta"`
		}
		// Only the meta matters: a body that is not an event is not one of ev's.
		if json.Unmarshal(msg.Data(), &body) == nil && body.Meta.CausationID == ev.Meta.EventID && body.Meta.CommandID != "" {
			applied[body.Meta.CommandID] = true
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("rulenode: retry: read %s: %w", r.o.stream, err)
		}
		if md.Sequence.Stream >= last {
			return applied, nil
		}
	}
}

// retryStore is the [Store] of a retry: a write whose command already
// wrote events (under the original id or an earlier retry's) is skipped
// and reported done; any other call goes through the embedded
// storeClient, whose suffix is the retry token.
type retryStore struct {
	*storeClient
	applied map[string]bool
}

// done reports whether an earlier attempt applied the write at ctx's path.
func (s *retryStore) done(ctx context.Context) (bool, error) {
	path := ActionPath(ctx)
	if path == "" {
		return false, errNoActionPath
	}
	orig := CommandID(s.set, s.ruleID, s.seq, path)
	if len(orig)+len(s.suffix) > MaxCommandIDLen {
		// A hashed id hides the original, and earlier retries could not be
		// recognised by it.
		return false, fmt.Errorf("%w: command id %q is too long to retry safely", ErrNotRetryable, orig)
	}
	if s.applied[orig] {
		return true, nil
	}
	for a := range s.applied {
		if strings.HasPrefix(a, orig+retrySep) {
			return true, nil
		}
	}
	return false, nil
}

func (s *retryStore) Insert(ctx context.Context, bucket string, rec events.Record) (events.Record, error) {
	if done, err := s.done(ctx); done || err != nil {
		return nil, err
	}
	return s.storeClient.Insert(ctx, bucket, rec)
}

func (s *retryStore) Update(ctx context.Context, bucket string, key any, changes events.Record, increment map[string]float64, opts ...WriteOption) (events.Record, error) {
	if done, err := s.done(ctx); done || err != nil {
		return nil, err
	}
	return s.storeClient.Update(ctx, bucket, key, changes, increment, opts...)
}

func (s *retryStore) Upsert(ctx context.Context, bucket string, key any, rec events.Record, increment map[string]float64) (events.Record, error) {
	if done, err := s.done(ctx); done || err != nil {
		return nil, err
	}
	return s.storeClient.Upsert(ctx, bucket, key, rec, increment)
}

func (s *retryStore) Delete(ctx context.Context, bucket string, key any, opts ...WriteOption) (bool, error) {
	if done, err := s.done(ctx); done || err != nil {
		return done, err
	}
	return s.storeClient.Delete(ctx, bucket, key, opts...)
}

func (s *retryStore) Tx(ctx context.Context, ops []events.TxOp, reads ...events.TxRead) ([]any, error) {
	if done, err := s.done(ctx); done || err != nil {
		return make([]any, len(ops)), err
	}
	return s.storeClient.Tx(ctx, ops, reads...)
}
