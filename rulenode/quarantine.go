package rulenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// A rule over its budget QuarantineStrikes times (on as many events)
// within QuarantineWindow is quarantined: it stops firing on every rule
// node of its set until [Resume]. Its state is shared through the KV
// bucket RuleStateBucket, key <set>.<rule> (in the rule id, "." is
// written "=2E" and ":" "=3A").
const (
	RuleStateBucket   = events.RuleStateBucket
	QuarantineStrikes = 3
	QuarantineWindow  = time.Minute
)

// RuleState is the shared state of one rule of a rule set.
type RuleState struct {
	RuleSet     string `json:"ruleSet"`
	Rule        string `json:"rule"`
	Quarantined bool   `json:"quarantined"`
	// Since and Reason (the last overrun's error) are set when quarantined.
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// Strikes are the budget overruns within the last QuarantineWindow.
	Strikes []Strike `json:"strikes,omitempty"`
}

// Strike is one budget overrun: the event's stream sequence and when.
type Strike struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
}

var (
	ruleKeyEscaper   = strings.NewReplacer(".", "=2E", ":", "=3A")
	ruleKeyUnescaper = strings.NewReplacer("=2E", ".", "=3A", ":")
)

func ruleStateKey(set, rule string) string { return set + "." + ruleKeyEscaper.Replace(rule) }

func openRuleStates(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return bindKV(ctx, js, RuleStateBucket, "rule states")
}

// strike records an overrun of rule's budget on the event at seq (once
// per event, however often it is delivered) and quarantines the rule at
// the QuarantineStrikes-th within QuarantineWindow. It reports whether
// this strike quarantined it.
func strike(ctx context.Context, kv jetstream.KeyValue, set, rule string, seq uint64, now time.Time, reason string) (quarantined bool, err error) {
	err = casUpdate(ctx, kv, ruleStateKey(set, rule), func(old []byte) ([]byte, bool, error) {
		quarantined = false
		st := RuleState{RuleSet: set, Rule: rule}
		if old != nil {
			if err := json.Unmarshal(old, &st); err != nil {
				return nil, false, fmt.Errorf("rulenode: rule state %s/%s: %w", set, rule, err)
			}
		}
		if st.Quarantined || slices.ContainsFunc(st.Strikes, func(s Strike) bool { return s.Seq == seq }) {
			return nil, false, nil
		}
		st.Strikes = slices.DeleteFunc(st.Strikes, func(s Strike) bool { return now.Sub(s.Time) >= QuarantineWindow })
		st.Strikes = append(st.Strikes, Strike{Seq: seq, Time: now})
		if len(st.Strikes) >= QuarantineStrikes {
			st.Quarantined, st.Since, st.Reason = true, now, reason
			quarantined = true
		}
		b, err := json.Marshal(st)
		return b, true, err
	})
	return quarantined, err
}

// quarantine is a runner's view of which rules of its set are
// quarantined, kept current by a watch of the set's keys. Each change is
// logged, so every node says when it stops and resumes a rule.
type quarantine struct {
	log   *slog.Logger
	mu    sync.RWMutex
	rules map[string]bool
}

// watchQuarantine returns the view once it holds the current states, and
// keeps it current until ctx is done.
func watchQuarantine(ctx context.Context, kv jetstream.KeyValue, set string, log *slog.Logger) (*quarantine, error) {
	w, err := kv.Watch(ctx, set+".*")
	if err != nil {
		return nil, fmt.Errorf("rulenode: watch rule states of %s: %w", set, err)
	}
	q := &quarantine{log: log.With("ruleSet", set), rules: map[string]bool{}}
	for e := range w.Updates() {
		if e == nil { // the current values are in
			go q.follow(ctx, w)
			return q, nil
		}
		q.apply(e)
	}
	return nil, fmt.Errorf("rulenode: watch rule states of %s: ended: %w", set, context.Cause(ctx))
}

func (q *quarantine) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				q.apply(e)
			}
		}
	}
}

func (q *quarantine) apply(e jetstream.KeyValueEntry) {
	var st RuleState
	if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &st) != nil {
		return // not a state this package wrote: ignored
	}
	_, rule, _ := strings.Cut(e.Key(), ".")
	rule = ruleKeyUnescaper.Replace(rule)
	q.mu.Lock()
	was := q.rules[rule]
	if st.Quarantined {
		q.rules[rule] = true
	} else {
		delete(q.rules, rule)
	}
	q.mu.Unlock()
	switch {
	case st.Quarantined && !was:
		q.log.Warn("rule node: rule quarantined, not firing until resumed", "rule", rule, "since", st.Since, "reason", st.Reason)
	case !st.Quarantined && was:
		q.log.Info("rule node: rule resumed", "rule", rule)
	}
}

func (q *quarantine) has(rule string) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.rules[rule]
}

// Quarantined returns the quarantined rules of rule set set ("" for every
// set), by set and rule.
func Quarantined(ctx context.Context, js jetstream.JetStream, set string) ([]RuleState, error) {
	kv, err := js.KeyValue(ctx, RuleStateBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rulenode: rule states: %w", err)
	}
	filter := ">"
	if set != "" {
		filter = set + ".*"
	}
	keys, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("rulenode: rule states: %w", err)
	}
	var out []RuleState
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // resumed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("rulenode: rule state %s: %w", k, err)
		}
		var st RuleState
		if json.Unmarshal(e.Value(), &st) == nil && st.Quarantined {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b RuleState) int {
		return strings.Compare(a.RuleSet+"\x00"+a.Rule, b.RuleSet+"\x00"+b.Rule)
	})
	return out, nil
}

// Resume lifts the quarantine of rule of rule set set on every rule node
// of the set, and forgets its strikes. A rule that is not quarantined is
// an *events.Error with code not_found.
func Resume(ctx context.Context, js jetstream.JetStream, set, rule string) error {
	if !ruleSetNameRE.MatchString(set) || !ruleIDRE.MatchString(rule) {
		return events.Errorf(events.CodeBadRequest, "%q is not a rule set name or %q not a rule id", set, rule)
	}
	notQuarantined := events.Errorf(events.CodeNotFound, "rule %s of rule set %s is not quarantined", rule, set)
	kv, err := js.KeyValue(ctx, RuleStateBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return notQuarantined
	}
	if err != nil {
		return fmt.Errorf("rulenode: rule states: %w", err)
	}
	key := ruleStateKey(set, rule)
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return notQuarantined
	}
	if err != nil {
		return fmt.Errorf("rulenode: rule state %s: %w", key, err)
	}
	var st RuleState
	if json.Unmarshal(e.Value(), &st) != nil || !st.Quarantined {
		return notQuarantined
	}
	if err := kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		return fmt.Errorf("rulenode: resume %s: %w", key, err)
	}
	return nil
}
