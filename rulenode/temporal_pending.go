package rulenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// pendingFiring is a completed match kept in its key's state until it has
// fired: the state is written with it first and the rule fires after, so
// of two runners completing a match with different events only the one
// whose write wins fires; the other reads the winner's pending firing,
// fires it (the same command ids) and applies its event after.
type pendingFiring struct {
	// Seq is the stream sequence of the completing event (one of Match),
	// which names the firing's command ids.
	Seq   uint64          `json:"seq"`
	Match []*events.Event `json:"match"`
}

// errStateChanged is a compare-and-set write of a temporal state that
// lost to another runner's.
var errStateChanged = errors.New("rulenode: temporal state changed meanwhile")

// load reads the state under key into st and returns its revision, 0 when
// there is none (st is left as given).
func (t *temporalEngine) load(ctx context.Context, key string, st *temporalState) (uint64, error) {
	e, err := t.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value(), st); err != nil {
		return 0, fmt.Errorf("rulenode: temporal state %s: %w", key, err)
	}
	return e.Revision(), nil
}

// put writes a state if key is still at rev (0: absent) and returns the
// new revision, or errStateChanged.
func (t *temporalEngine) put(ctx context.Context, key string, b []byte, rev uint64) (uint64, error) {
	var err error
	if rev == 0 {
		rev, err = t.kv.Create(ctx, key, b)
	} else {
		rev, err = t.kv.Update(ctx, key, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, errStateChanged
	}
	return rev, err
}

// settle fires st's pending firing (st read at rev) and clears it if the
// state is still at rev: a runner that loses the clear lost it to one that
// fired the same firing. A firing that fails and may succeed later stays
// pending (the event is retried, the deadline watcher tries it too). One
// that would fail the same way again is cleared: when it is seq's own
// (the event being applied completed it) its error is returned, for the
// event's dead letter; else its completing event is dead-lettered here.
func (t *temporalEngine) settle(ctx context.Context, rule *Rule, key string, rev uint64, st *temporalState, seq uint64, fire fireFunc) error {
	p := st.Pending
	i := slices.IndexFunc(p.Match, func(m *events.Event) bool { return m.Meta.Seq == p.Seq })
	if i < 0 {
		return fmt.Errorf("rulenode: temporal state %s: pending firing of event %d is not in its match", key, p.Seq)
	}
	ferr := fire(ctx, rule, p.Match[i], p.Match)
	if ferr != nil && !isPermanent(ferr) {
		return ferr
	}
	if ferr != nil && p.Seq != seq {
		if err := t.bury(ctx, rule, p.Match[i], ferr); err != nil {
			return err
		}
		ferr = nil
	}
	st.Pending = nil
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := t.put(ctx, key, b, rev); err != nil && !errors.Is(err, errStateChanged) {
		return err
	}
	return ferr
}

// skipFiring fires nothing: a pending firing of a rule removed from the
// set, or quarantined, is cleared.
func skipFiring(context.Context, *Rule, *events.Event, []*events.Event) error { return nil }
