package rulenode

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// temporalRetry is how long a deadline that could not fire (the store or
// the bucket unreachable, an action failing) waits before it is tried again.
const temporalRetry = time.Second

// pendingGrace is how long a pending firing is left to the runner that
// wrote it before the deadline watchers fire it: its writer died, or its
// firing failed and no event of the key came since.
const pendingGrace = 5 * time.Second

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
func (r *Runner) runTemporal(ctx context.Context, log logger, set *RuleSet, e *evalEvent) []ruleFailure {
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
func (r *Runner) fireTemporal(log logger, set *RuleSet) fireFunc {
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
// restarts after a crash) picks up every pending one. So are the pending
// firings, which it fires once they are pendingGrace old.
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
			// Only whether a deadline or a firing is pending: the events
			// stay raw (a state may hold many, every runner reads every
			// change).
			var st struct {
				Deadline int64             `json:"deadline"`
				Match    []json.RawMessage `json:"match"`
				Pending  json.RawMessage   `json:"pending"`
			}
			switch {
			case entry.Operation() != jetstream.KeyValuePut || json.Unmarshal(entry.Value(), &st) != nil:
				delete(pending, entry.Key())
			case len(st.Pending) > 0 && string(st.Pending) != "null":
				pending[entry.Key()] = clock.Now().Add(pendingGrace).UnixMilli()
			case st.Deadline != 0 && len(st.Match) > 0:
				pending[entry.Key()] = st.Deadline
			default:
				delete(pending, entry.Key())
			}
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

// expire fires what is due under key: a pending absence whose deadline
// has passed becomes the state's pending firing (written first, as a
// match completed by an event, so that it fires once), then fires and is
// cleared, keeping what recognises a redelivered after event; a pending
// firing left behind fires.
func (t *temporalEngine) expire(ctx context.Context, key string) error {
	var st temporalState
	rev, err := t.load(ctx, key, &st)
	if err != nil || rev == 0 {
		return err
	}
	if st.Pending == nil {
		if st.Deadline == 0 || len(st.Match) == 0 || st.Deadline > t.r.o.clock.Now().UnixMilli() {
			return nil // not a pending absence (any more), or not yet
		}
		st.Pending = &pendingFiring{Seq: st.Match[0].Meta.Seq, Match: st.Match}
		st.Match, st.Deadline = nil, 0
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if rev, err = t.put(ctx, key, b, rev); errors.Is(err, errStateChanged) {
			return nil // another runner fired it, or a new event came: the watcher sees the change
		} else if err != nil {
			return err
		}
	}
	fire := skipFiring
	// A rule removed from the set, or quarantined, does not fire: its
	// firing is cleared.
	rule := t.r.set.rule(st.Rule)
	if rule != nil && rule.Temporal != nil && !t.r.guard.Load().quarantined(rule.ID) {
		log := t.r.o.logger.With("ruleSet", t.r.set.Name, "rule", rule.ID, "matchKey", st.Key)
		fire = t.r.fireTemporal(log, t.r.set)
	}
	return t.settle(ctx, rule, key, rev, &st, 0, fire)
}

// bury dead-letters the completing event of a firing that failed for
// good (an absence's after event), like an event whose rule failed for
// good.
func (t *temporalEngine) bury(ctx context.Context, rule *Rule, ev *events.Event, cause error) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	dl := DeadLetter{RuleSet: t.r.set.Name, RuleID: rule.ID, Subject: eventSubject(ev), StreamSeq: ev.Meta.Seq,
		Reason: ReasonRejected, Error: cause.Error(), EventID: ev.Meta.EventID, CorrelationID: ev.Meta.CorrelationID,
		Hop: ev.Meta.Hop, Time: t.r.o.clock.Now().UTC(), body: body}
	if err := publishDeadLetter(ctx, t.r.js, &dl); err != nil {
		return err
	}
	t.r.o.logger.ErrorContext(ctx, "rule node: temporal firing dead-lettered", "ruleSet", t.r.set.Name, "rule", rule.ID, "reason", dl.Reason, "err", cause)
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
