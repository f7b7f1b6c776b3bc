package rulenode

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// temporalRetry is how long a deadline that could not fire (the store or
// the bucket unreachable, an action failing) waits before it is tried again.
const temporalRetry = time.Second

// hasTemporal reports whether some rule of the set has a temporal trigger.
func (rs *RuleSet) hasTemporal() bool {
	for _, r := range rs.Rules {
		if r.Temporal != nil {
			return true
		}
	}
	return false
}

// startTemporal binds the temporal bucket and starts the deadline watcher
// when the set has temporal rules; it stops with ctx.
func (r *Runner) startTemporal(ctx context.Context) error {
	if !r.set.hasTemporal() {
		return nil
	}
	kv, err := bindKV(ctx, r.js, events.TemporalBucket, "temporal rules")
	if err != nil {
		return err
	}
	r.temporal = &temporalEngine{r: r, kv: kv, limit: stateLimit(r.js.Conn().MaxPayload())}
	w, err := kv.Watch(ctx, kvToken(r.set.Name)+".>")
	if err != nil {
		return err
	}
	go r.temporal.deadlines(ctx, w)
	return nil
}

// runTemporal runs e's event through the set's temporal rules.
func (r *Runner) runTemporal(ctx context.Context, log *slog.Logger, set *RuleSet, e *evalEvent) []ruleFailure {
	var failed []ruleFailure
	for _, rule := range set.Match(eventSubject(e.ev)) {
		if rule.Temporal == nil || r.guard.Load().quarantined(rule.ID) {
			continue
		}
		if err := r.temporal.apply(ctx, rule, e, r.fireTemporal(log, set)); err != nil {
			failed = append(failed, ruleFailure{rule.ID, err})
		}
	}
	return failed
}

// fireTemporal returns what runs a temporal rule on a completed match:
// its when and then see event (the completing event; for absence the
// after event) and match. Its command ids are those of a rule on the
// completing event ([CommandID] with its stream sequence), so two nodes
// firing the same match, or one firing it again, write once.
func (r *Runner) fireTemporal(log *slog.Logger, set *RuleSet) fireFunc {
	return func(ctx context.Context, rule *Rule, ev *events.Event, match []*events.Event) error {
		vars, err := eventVars(ev)
		if err != nil {
			return &EvalError{RuleID: rule.ID, Err: err}
		}
		list := make([]any, len(match))
		for i, m := range match {
			mv, err := eventVars(m)
			if err != nil {
				return &EvalError{RuleID: rule.ID, Err: err}
			}
			list[i] = mv[EventVar]
		}
		e := &evalEvent{ev: ev, vars: withVar(vars, MatchVar, list), done: true}
		if ok, err := rule.eligible(ctx, e); err != nil || !ok {
			return err
		}
		st := r.guard.Load().store(set, rule, newStoreClient(r.cl, set.Name, rule.ID, ev.Meta.Seq))
		return r.runRule(ctx, log, set, rule, e, st)
	}
}

// deadlines follows the set's states in the temporal bucket and fires each
// pending absence when its deadline passes. Every runner of the set does
// so: the first to fire writes, the others' commands are answered from
// the store's dedupe table, and whichever clears the state first wins.
// The pending deadlines are the bucket's, so a runner that starts (or
// restarts after a crash) picks up every pending one.
func (t *temporalEngine) deadlines(ctx context.Context, w jetstream.KeyWatcher) {
	defer w.Stop()
	log := t.r.o.logger.With("ruleSet", t.r.set.Name)
	clock := t.r.o.clock
	pending := map[string]int64{} // KV key → deadline, unix ms
	timer := clock.After(time.Hour)
	for {
		select {
		case <-ctx.Done():
			return
		case entry, ok := <-w.Updates():
			if !ok {
				return
			}
			if entry == nil {
				break // the initial values are in
			}
			// Only whether a deadline is pending: the events stay raw
			// (a state may hold many, every runner reads every change).
			var st struct {
				Deadline int64             `json:"deadline"`
				Match    []json.RawMessage `json:"match"`
			}
			if entry.Operation() != jetstream.KeyValuePut || json.Unmarshal(entry.Value(), &st) != nil || st.Deadline == 0 || len(st.Match) == 0 {
				delete(pending, entry.Key())
				break
			}
			pending[entry.Key()] = st.Deadline
		case <-timer:
			now := clock.Now().UnixMilli()
			for _, key := range due(pending, now) {
				if err := t.expire(ctx, key); err != nil {
					log.WarnContext(ctx, "rule node: temporal deadline could not fire, will retry", "key", key, "err", err, "retryIn", temporalRetry)
					pending[key] = now + temporalRetry.Milliseconds()
				}
			}
		}
		timer = clock.After(nextDeadline(pending, clock.Now().UnixMilli()))
	}
}

// due returns the keys whose deadline is at or before now, earliest first.
func due(pending map[string]int64, now int64) []string {
	var keys []string
	for key, at := range pending {
		if at <= now {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(pending[a], pending[b]), cmp.Compare(a, b)) })
	return keys
}

// nextDeadline is the wait from now (unix ms) until the earliest pending
// deadline.
func nextDeadline(pending map[string]int64, now int64) time.Duration {
	wait := time.Hour
	for _, at := range pending {
		wait = min(wait, time.Duration(max(at-now, 0))*time.Millisecond)
	}
	return wait
}

// expire fires the pending absence under key if its deadline has passed,
// then clears it (keeping what recognises a redelivered after event).
func (t *temporalEngine) expire(ctx context.Context, key string) error {
	entry, err := t.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var st temporalState
	if err := json.Unmarshal(entry.Value(), &st); err != nil || st.Deadline == 0 || len(st.Match) == 0 || st.Deadline > t.r.o.clock.Now().UnixMilli() {
		return nil // not a pending absence (any more), or not yet
	}
	rule := t.r.set.rule(st.Rule)
	// A rule removed from the set, or quarantined, does not fire: its
	// deadline is cleared.
	if rule != nil && rule.Temporal != nil && !t.r.guard.Load().quarantined(rule.ID) {
		log := t.r.o.logger.With("ruleSet", t.r.set.Name, "rule", rule.ID, "matchKey", st.Key)
		if err := t.r.fireTemporal(log, t.r.set)(ctx, rule, st.Match[0], st.Match); err != nil {
			if !isPermanent(err) {
				return err
			}
			// Firing again would fail the same way: dead-letter the
			// after event (reason rejected) and clear the deadline.
			if err := t.bury(ctx, rule, st.Match[0], err); err != nil {
				return err
			}
		}
	}
	cleared, err := json.Marshal(temporalState{Rule: st.Rule, Key: st.Key, Seen: st.Seen})
	if err != nil {
		return err
	}
	_, err = t.kv.Update(ctx, key, cleared, entry.Revision())
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // another runner cleared it, or a new after event came
	}
	return err
}

// bury dead-letters the after event of an absence whose firing failed for
// good, like an event whose rule failed for good.
func (t *temporalEngine) bury(ctx context.Context, rule *Rule, after *events.Event, cause error) error {
	body, err := json.Marshal(after)
	if err != nil {
		return err
	}
	dl := DeadLetter{RuleSet: t.r.set.Name, RuleID: rule.ID, Subject: eventSubject(after), StreamSeq: after.Meta.Seq,
		Reason: ReasonRejected, Error: cause.Error(), EventID: after.Meta.EventID, CorrelationID: after.Meta.CorrelationID,
		Hop: after.Meta.Hop, Time: t.r.o.clock.Now().UTC(), body: body}
	if err := publishDeadLetter(ctx, t.r.js, &dl); err != nil {
		return err
	}
	t.r.o.logger.ErrorContext(ctx, "rule node: temporal deadline dead-lettered", "ruleSet", t.r.set.Name, "rule", rule.ID, "reason", dl.Reason, "err", cause)
	return nil
}

// rule returns the set's rule with the id, or nil.
func (rs *RuleSet) rule(id string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}
