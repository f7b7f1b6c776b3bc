package rulenode

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// TemporalKind is the kind of a temporal trigger.
type TemporalKind string

// The temporal triggers (see docs/protocol.md, "Temporal rules").
const (
	// TemporalAbsence fires when an expect event did not follow an after
	// event of the same key within the window.
	TemporalAbsence TemporalKind = "absence"
	// TemporalCount fires when AtLeast events of the same key fall within
	// a sliding window.
	TemporalCount TemporalKind = "count"
	// TemporalSequence fires when its steps happened in order for the same
	// key, the last within the window of the first.
	TemporalSequence TemporalKind = "sequence"
)

// MatchVar is the CEL variable holding the matched events of a temporal
// rule (in its when and then), oldest first.
const MatchVar = "match"

// Caps on temporal triggers: the matched events are kept in the temporal
// KV bucket, one value per rule and key.
const (
	MaxSequenceSteps = 16
	MaxCountAtLeast  = 1000
	// MaxWithin is a day short of the life of a state key
	// (events.TemporalStateTTL), so a pending deadline fires before its
	// key expires.
	MaxWithin = events.TemporalStateTTL - 24*time.Hour
	// maxSeen bounds the event sequences a key's state remembers to
	// recognise a redelivered event.
	maxSeen = 256
	// maxExpected bounds the expect events an absence state remembers
	// for an after event applied after them.
	maxExpected = 16
)

// Temporal is a rule's trigger over time, in place of On (Rule.On holds
// the union of its steps' filters, for the consumer and for routing).
type Temporal struct {
	Kind TemporalKind
	// Steps are, for absence, the after and the expect step; for count,
	// the one step counted; for sequence, the steps in order.
	Steps []*Step
	// Key is the `${}` expression over each event that groups events
	// into matches.
	Key     string
	AtLeast int // count only
	Within  time.Duration

	key *Value
}

// Step is one kind of event a temporal trigger waits for.
type Step struct {
	On   []string
	When string
	when *program
}

// matches reports whether ev (of e) is an event of the step.
func (s *Step) matches(ctx context.Context, ruleID string, e *evalEvent) (bool, error) {
	subject := eventSubject(e.ev)
	if !slices.ContainsFunc(s.On, func(f string) bool { return events.FilterCovers(f, subject) }) {
		return false, nil
	}
	if s.when == nil {
		return true, nil
	}
	vars, err := e.activation()
	if err != nil {
		return false, &EvalError{RuleID: ruleID, Expr: s.When, Err: err}
	}
	ok, err := s.when.evalBool(ctx, vars)
	if err != nil {
		return false, &EvalError{RuleID: ruleID, Expr: s.When, Err: err}
	}
	return ok, nil
}

// temporalState is the value of a rule and match key in the temporal KV
// bucket: the partial match so far, and for absence the deadline.
type temporalState struct {
	Rule  string          `json:"rule"`
	Key   string          `json:"key"`
	Match []*events.Event `json:"match"`
	// Deadline is when a pending absence fires (unix ms, store clock of
	// the after event plus within).
	Deadline int64 `json:"deadline,omitempty"`
	// Expected are the times of expect events that came with no after
	// event pending (absence only), newest last.
	Expected []int64 `json:"expected,omitempty"`
	// Seen are the stream sequences of the events applied, newest last:
	// a redelivered event changes nothing twice.
	Seen []uint64 `json:"seen,omitempty"`
}

func (s *temporalState) seen(seq uint64) bool { return slices.Contains(s.Seen, seq) }

func (s *temporalState) see(seq uint64) {
	s.Seen = append(s.Seen, seq)
	if len(s.Seen) > maxSeen {
		s.Seen = s.Seen[len(s.Seen)-maxSeen:]
	}
}

// temporalKey is the KV key of a rule's state for a match key. The match
// key is hashed: it is any text, KV keys are not.
func temporalKey(set, ruleID, matchKey string) string {
	return kvToken(set) + "." + kvToken(ruleID) + "." + kvToken("k:"+matchKey)
}

// matchKey evaluates the trigger's key over e's event.
func (t *Temporal) matchKey(ctx context.Context, ruleID string, e *evalEvent) (string, error) {
	vars, err := e.activation()
	if err != nil {
		return "", &EvalError{RuleID: ruleID, Expr: t.Key, Err: err}
	}
	v, err := t.key.Eval(ctx, vars)
	if err != nil {
		return "", &EvalError{RuleID: ruleID, Expr: t.Key, Err: err}
	}
	s, err := formatText(v)
	if err != nil {
		return "", &EvalError{RuleID: ruleID, Expr: t.Key, Err: err}
	}
	return s, nil
}

// step returns the index of the first step ev is an event of, from, or -1.
func (t *Temporal) step(ctx context.Context, ruleID string, e *evalEvent, from int) (int, error) {
	for i := from; i < len(t.Steps); i++ {
		ok, err := t.Steps[i].matches(ctx, ruleID, e)
		if err != nil || ok {
			return i, err
		}
	}
	return -1, nil
}

// advance applies ev to the state of its key and returns the state to
// keep (nil: delete it) and the completed match to fire on (nil: none).
// It is pure: the caller retries it on a concurrent change.
func (t *Temporal) advance(ctx context.Context, ruleID string, e *evalEvent, st *temporalState) (next *temporalState, fire []*events.Event, err error) {
	ev := e.ev
	within := t.Within.Milliseconds()
	switch t.Kind {
	case TemporalCount:
		// The window ends at the newest event, whichever was applied last:
		// events of other records may be applied out of order.
		st.Match = append(st.Match, ev)
		slices.SortStableFunc(st.Match, func(a, b *events.Event) int { return cmp.Compare(a.Meta.Time, b.Meta.Time) })
		newest := st.Match[len(st.Match)-1].Meta.Time
		st.Match = slices.DeleteFunc(st.Match, func(m *events.Event) bool { return newest-m.Meta.Time >= within })
		if len(st.Match) >= t.AtLeast {
			fire, st.Match = st.Match, nil
		}
	case TemporalSequence:
		if len(st.Match) > 0 && ev.Meta.Time-st.Match[0].Meta.Time > within {
			st.Match = nil // the window of the partial match has passed
		}
		next, err := t.Steps[len(st.Match)].matches(ctx, ruleID, e)
		if err != nil {
			return nil, nil, err
		}
		switch first, err := t.Steps[0].matches(ctx, ruleID, e); {
		case err != nil:
			return nil, nil, err
		case next:
			st.Match = append(st.Match, ev)
		case first:
			st.Match = []*events.Event{ev} // a new first step restarts the match
		}
		if len(st.Match) == len(t.Steps) {
			fire, st.Match = st.Match, nil
		}
	case TemporalAbsence:
		i, err := t.step(ctx, ruleID, e, 0)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case i == 0 && len(st.Match) == 0:
			// An expect event applied before its after event (another
			// runner had it) still cancels it.
			if !slices.ContainsFunc(st.Expected, func(t int64) bool { return t >= ev.Meta.Time && t <= ev.Meta.Time+within }) {
				st.Match, st.Deadline = []*events.Event{ev}, ev.Meta.Time+within
			}
		case i == 1 && len(st.Match) > 0 && ev.Meta.Time >= st.Match[0].Meta.Time && ev.Meta.Time <= st.Deadline:
			st.Match, st.Deadline = nil, 0 // expected in time: cancelled
		case i == 1 && len(st.Match) == 0:
			st.Expected = append(st.Expected, ev.Meta.Time)
			st.Expected = st.Expected[max(0, len(st.Expected)-maxExpected):]
		}
	}
	if len(st.Match) == 0 && len(st.Expected) == 0 && fire == nil {
		return nil, nil, nil
	}
	st.see(ev.Meta.Seq)
	return st, fire, nil
}

// temporalEngine keeps the partial matches of a rule set's temporal rules
// in the temporal KV bucket and fires their actions.
type temporalEngine struct {
	r  *Runner
	kv jetstream.KeyValue
}

// fireFunc runs a temporal rule's actions for a completed match; the
// completing event's stream sequence names its command ids.
type fireFunc func(ctx context.Context, rule *Rule, ev *events.Event, match []*events.Event) error

// apply runs e's event through a temporal rule: updates the key's state
// and, when the event completes a match, fires the rule before the new
// state is written. A firing that fails leaves the state as it was (the
// event is retried); a firing done twice (the write lost, a redelivery)
// sends the same command ids, which the store answers once.
func (t *temporalEngine) apply(ctx context.Context, rule *Rule, e *evalEvent, fire fireFunc) error {
	if rule.NoLoop && e.ev.Meta.RuleID == rule.ID {
		return nil
	}
	tr := rule.Temporal
	if i, err := tr.step(ctx, rule.ID, e, 0); err != nil || i < 0 {
		return err
	}
	mk, err := tr.matchKey(ctx, rule.ID, e)
	if err != nil {
		return err
	}
	key := temporalKey(t.r.set.Name, rule.ID, mk)
	return casUpdate(ctx, t.kv, key, func(old []byte) ([]byte, bool, error) {
		st := &temporalState{Rule: rule.ID, Key: mk}
		if old != nil {
			if err := json.Unmarshal(old, st); err != nil {
				return nil, false, fmt.Errorf("rulenode: temporal state %s: %w", key, err)
			}
		}
		if st.seen(e.ev.Meta.Seq) {
			return nil, false, nil
		}
		next, match, err := tr.advance(ctx, rule.ID, e, st)
		if err != nil {
			return nil, false, err
		}
		if match != nil {
			if err := fire(ctx, rule, e.ev, match); err != nil {
				return nil, false, err
			}
		}
		if next == nil {
			if old == nil {
				return nil, false, nil
			}
			// The emptied state keeps only what recognises a redelivery.
			next = &temporalState{Rule: rule.ID, Key: mk, Seen: st.Seen}
			next.see(e.ev.Meta.Seq)
		}
		b, err := json.Marshal(next)
		return b, true, err
	})
}
