package rulenode

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
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
	// maxBuffered bounds the step events a sequence state keeps (oldest
	// dropped first): a late earlier step completes a match with them.
	maxBuffered = 64
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
	Rule string `json:"rule"`
	Key  string `json:"key"`
	// Match is, for absence, the after event pending; for count, the
	// events in the window.
	Match []*events.Event `json:"match"`
	// Buffer is, for sequence, the step events within the window of the
	// newest, in stream order, whatever order they were applied in (steps
	// of one key handled by different runners): the match is found in it
	// anew on every event.
	Buffer []bufferedStep `json:"buffer,omitempty"`
	// Deadline is when a pending absence fires (unix ms, store clock of
	// the after event plus within).
	Deadline int64 `json:"deadline,omitempty"`
	// Expected are the times of expect events that came with no after
	// event pending (absence only), newest last.
	Expected []int64 `json:"expected,omitempty"`
	// Seen are the stream sequences of the events applied, newest last:
	// a redelivered event changes nothing twice.
	Seen []uint64 `json:"seen,omitempty"`
	// Pending is a completed match written before it fires (an outbox):
	// whichever runner reads it fires it, then clears it.
	Pending *pendingFiring `json:"pending,omitempty"`
}

// bufferedStep is a step event of a sequence and the steps it is an
// event of (bit i: step i), judged once when it is applied.
type bufferedStep struct {
	Steps uint32        `json:"steps"`
	Event *events.Event `json:"event"`
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

// stepMask returns the steps e's event is an event of, bit i for step i.
func (t *Temporal) stepMask(ctx context.Context, ruleID string, e *evalEvent) (uint32, error) {
	var mask uint32
	for i, s := range t.Steps {
		ok, err := s.matches(ctx, ruleID, e)
		if err != nil {
			return 0, err
		}
		if ok {
			mask |= 1 << i
		}
	}
	return mask, nil
}

// buffer adds a step event to a sequence's buffer in stream order, drops
// the events past the window of the newest (they can no longer be in a
// match with it) and the oldest past maxBuffered.
func (t *Temporal) buffer(buf []bufferedStep, b bufferedStep) []bufferedStep {
	i, _ := slices.BinarySearchFunc(buf, b.Event.Meta.Seq, func(x bufferedStep, seq uint64) int { return cmp.Compare(x.Event.Meta.Seq, seq) })
	buf = slices.Insert(buf, i, b)
	newest := int64(0)
	for _, x := range buf {
		newest = max(newest, x.Event.Meta.Time)
	}
	buf = slices.DeleteFunc(buf, func(x bufferedStep) bool { return newest-x.Event.Meta.Time > t.Within.Milliseconds() })
	return buf[max(0, len(buf)-maxBuffered):]
}

// sequence finds the first complete match in a buffer, walking it in
// stream order: a step event that is the next step extends the partial
// match, a first step (that is not the next) restarts it, and a partial
// match whose first step is past the window is dropped. It returns the
// match and the index of its last event, or nil.
func (t *Temporal) sequence(buf []bufferedStep) ([]*events.Event, int) {
	var match []*events.Event
	for i, b := range buf {
		if len(match) > 0 && b.Event.Meta.Time-match[0].Meta.Time > t.Within.Milliseconds() {
			match = nil
		}
		switch {
		case b.Steps&(1<<len(match)) != 0:
			match = append(match, b.Event)
		case b.Steps&1 != 0:
			match = []*events.Event{b.Event}
		}
		if len(match) == len(t.Steps) {
			return match, i
		}
	}
	return nil, -1
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
		for i, m := range st.Match {
			// A partial match kept by a runner before the buffer: its
			// events, as the steps they were taken for.
			st.Buffer = t.buffer(st.Buffer, bufferedStep{Steps: 1 << i, Event: m})
		}
		st.Match = nil
		mask, err := t.stepMask(ctx, ruleID, e)
		if err != nil {
			return nil, nil, err
		}
		st.Buffer = t.buffer(st.Buffer, bufferedStep{Steps: mask, Event: ev})
		if match, last := t.sequence(st.Buffer); match != nil {
			// The events up to the match's last are spent: none of them
			// starts or extends another match.
			fire, st.Buffer = match, slices.Delete(st.Buffer, 0, last+1)
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
	if len(st.Match) == 0 && len(st.Buffer) == 0 && len(st.Expected) == 0 && fire == nil {
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
	// limit is the largest state value written: past it the event is
	// refused (StateTooLargeError) rather than retried on a write that
	// cannot succeed.
	limit int
}

// Room kept below the connection's max payload for a KV put's subject
// and headers.
const kvPutRoom = 4 << 10

// stateLimit is the largest temporal state a connection with this max
// payload can write.
func stateLimit(maxPayload int64) int { return int(maxPayload) - kvPutRoom }

// StateTooLargeError is a temporal rule's state for a match key that
// would be past the largest value the temporal bucket takes (the NATS
// max payload, 1 MB by default, less room for the put): the event that
// would grow it is dead-lettered (reason rejected) with this error, and
// the state stays as it was. Many events held at once (a large count
// atLeast, a long sequence window) of large records reach it.
type StateTooLargeError struct {
	RuleID, Key string
	Size, Limit int
}

func (e *StateTooLargeError) Error() string {
	return fmt.Sprintf("rulenode: rule %q: temporal state of key %q would be %d bytes, over the limit of %d (the NATS max payload less %d): the events it holds are too many or too large",
		e.RuleID, e.Key, e.Size, e.Limit, kvPutRoom)
}

// fireFunc runs a temporal rule's actions for a completed match; the
// completing event's stream sequence names its command ids.
type fireFunc func(ctx context.Context, rule *Rule, ev *events.Event, match []*events.Event) error

// apply runs e's event through a temporal rule: updates the key's state
// and, when the event completes a match, writes the state with the match
// as its pending firing and only then fires it (see settle). A state read
// with a firing pending fires that first, so a match fires once whatever
// the interleaving of runners: two runners completing a match with
// different events cannot both write it.
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
	seq := e.ev.Meta.Seq
	for {
		st := &temporalState{Rule: rule.ID, Key: mk}
		rev, err := t.load(ctx, key, st)
		if err != nil {
			return err
		}
		if st.Pending != nil {
			if err := t.settle(ctx, rule, key, rev, st, seq, fire); err != nil {
				return err
			}
			continue
		}
		if st.seen(seq) {
			return nil
		}
		next, match, err := tr.advance(ctx, rule.ID, e, st)
		if err != nil {
			return err
		}
		if next == nil && rev == 0 {
			return nil
		}
		if next == nil {
			// The emptied state keeps only what recognises a redelivery.
			next = &temporalState{Rule: rule.ID, Key: mk, Seen: st.Seen}
			next.see(seq)
		}
		if match != nil {
			completing := e.ev
			if tr.Kind == TemporalSequence {
				completing = match[len(match)-1] // whichever step was applied last
			}
			next.Pending = &pendingFiring{Seq: completing.Meta.Seq, Match: match}
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if len(b) > t.limit {
			return &StateTooLargeError{RuleID: rule.ID, Key: mk, Size: len(b), Limit: t.limit}
		}
		rev, err = t.put(ctx, key, b, rev)
		if errors.Is(err, errStateChanged) {
			continue // another runner changed the state: apply to its
		}
		if err != nil || next.Pending == nil {
			return err
		}
		return t.settle(ctx, rule, key, rev, next, seq, fire)
	}
}
