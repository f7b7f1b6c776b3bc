package rulenode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// guard holds a runner's rules to their budgets: it refuses the writes of
// a rule over its maxWritesPerEvent or maxCascadeWrites before they are
// made, paces each rule at its rate, counts overruns toward quarantine and
// skips quarantined rules. A runner of a set without budgets has none (a
// nil *guard lets everything through), and touches no KV bucket.
type guard struct {
	r          *Runner
	rates      map[string]*tokenBucket // by rule id
	cascades   *cascades               // nil: no rule has maxCascadeWrites
	states     jetstream.KeyValue
	quarantine *quarantine
}

// guards is how a runner builds its guard: from its set at start and,
// for a deployed rule set, again from the newest version in force.
type guards struct {
	mu      sync.Mutex
	version atomic.Int64 // the version the current guard was built from
	// life is Run's context: the quarantine watch lives as long.
	life context.Context
	// The rule states and their watch, opened by the first guard and
	// shared by the next: they are the set's, whatever its version.
	states     jetstream.KeyValue
	quarantine *quarantine
}

// startGuard builds the guard of the runner's set (for a deployed rule
// set, the version newest at start); nil when it has no budgets.
func (r *Runner) startGuard(ctx context.Context) (*guard, error) {
	r.guards.mu.Lock()
	defer r.guards.mu.Unlock()
	r.guards.life = ctx
	r.guards.version.Store(int64(r.set.Version))
	return r.newGuard(r.set)
}

// guardFor returns the guard an event handled by set is held to. A
// deployed rule set's guard is rebuilt from the first newer version that
// handles an event (a deploy or a rollback switched), so that rates and
// cascade counting are the version in force's; each event's caps come
// from the version that handles it (see admit and store).
func (r *Runner) guardFor(ctx context.Context, set *RuleSet) (*guard, error) {
	gs := &r.guards
	if r.versions == nil || int64(set.Version) <= gs.version.Load() {
		return r.guard.Load(), nil
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if int64(set.Version) <= gs.version.Load() {
		return r.guard.Load(), nil
	}
	g, err := r.newGuard(set)
	if err != nil {
		return nil, err
	}
	r.guard.Store(g)
	gs.version.Store(int64(set.Version))
	r.o.logger.InfoContext(ctx, "rule node: budgets rebuilt for the rule-set version in force", "ruleSet", set.Name, "version", set.Version,
		"budgets", g != nil)
	return g, nil
}

// newGuard opens the KV buckets set's budgets need and waits for the
// current quarantine states; nil when set has no budgets. The caller
// holds r.guards.mu.
func (r *Runner) newGuard(set *RuleSet) (*guard, error) {
	if !set.hasBudgets() {
		return nil, nil
	}
	gs := &r.guards
	ctx := gs.life
	g := &guard{r: r, rates: map[string]*tokenBucket{}}
	var err error
	for _, rule := range set.Rules {
		b := set.BudgetOf(rule)
		if b.Rate > 0 {
			g.rates[rule.ID] = newTokenBucket(b.Rate)
		}
		if b.MaxCascadeWrites > 0 && g.cascades == nil {
			if g.cascades, err = openCascades(ctx, r.js); err != nil {
				return nil, err
			}
		}
	}
	if gs.quarantine == nil {
		if gs.states, err = openRuleStates(ctx, r.js); err != nil {
			return nil, err
		}
		if gs.quarantine, err = watchQuarantine(ctx, gs.states, set.Name, r.o.logger); err != nil {
			return nil, err
		}
	}
	g.states, g.quarantine = gs.states, gs.quarantine
	return g, nil
}

// quarantined reports whether rule is quarantined: it does not fire.
func (g *guard) quarantined(ruleID string) bool { return g != nil && g.quarantine.has(ruleID) }

// admit returns the rules of set that may run on e's event (the event at
// stream sequence seq), quarantined ones left out, and adds to failed a *BudgetError for each that would
// write over its budget. The writes of every rule are counted first when
// a rule has maxWritesPerEvent or the set counts cascades.
func (g *guard) admit(ctx context.Context, set *RuleSet, e *evalEvent, seq uint64, rules []*Rule, failed []ruleFailure) ([]*Rule, []ruleFailure) {
	if g == nil {
		return rules, failed
	}
	var run []*Rule
	var planned, limits []int
	for _, rule := range rules {
		if g.quarantined(rule.ID) {
			continue
		}
		b := set.BudgetOf(rule)
		if b.MaxWritesPerEvent == 0 && g.cascades == nil {
			run = append(run, rule)
			planned, limits = append(planned, 0), append(limits, 0)
			continue
		}
		n, err := plannedWrites(ctx, rule, e, newStoreClient(g.r.cl, g.r.set.Name, rule.ID, seq))
		switch {
		case err != nil:
			failed = append(failed, ruleFailure{rule.ID, err})
			continue
		case b.MaxWritesPerEvent > 0 && n > b.MaxWritesPerEvent:
			failed = append(failed, ruleFailure{rule.ID, &BudgetError{RuleID: rule.ID, Key: KeyMaxWritesPerEvent, Limit: b.MaxWritesPerEvent, Writes: n}})
			continue
		}
		run = append(run, rule)
		planned, limits = append(planned, n), append(limits, b.MaxCascadeWrites)
	}
	if g.cascades == nil || len(run) == 0 {
		return run, failed
	}
	corr := e.ev.Meta.CorrelationID
	if corr == "" {
		corr = e.ev.Meta.EventID
	}
	refused, err := g.cascades.admit(ctx, corr, planned, limits)
	if err != nil {
		// Counting is part of a budgeted write: retry the event.
		for _, rule := range run {
			failed = append(failed, ruleFailure{rule.ID, err})
		}
		return nil, failed
	}
	admitted := run[:0]
	for i, rule := range run {
		if writes, ok := refused[i]; ok {
			failed = append(failed, ruleFailure{rule.ID, &BudgetError{RuleID: rule.ID, Key: KeyMaxCascadeWrites, Limit: limits[i], Writes: writes}})
			continue
		}
		admitted = append(admitted, rule)
	}
	return admitted, failed
}

// store returns st held to rule's per-event cap (as set, the version
// handling the event, says) and rate as it writes.
func (g *guard) store(set *RuleSet, rule *Rule, st Store) Store {
	if g == nil {
		return st
	}
	b := set.BudgetOf(rule)
	if b.MaxWritesPerEvent == 0 && b.Rate == 0 {
		return st
	}
	return &budgetStore{Store: st, rule: rule.ID, budget: b, rate: g.rates[rule.ID]}
}

// overrun counts the budget overruns among failed toward quarantine: the
// QuarantineStrikes-th within QuarantineWindow quarantines the rule on
// every node of the set (a log line at warning, a metric). Failing to
// record a strike is logged; the event is dead-lettered all the same.
func (g *guard) overrun(ctx context.Context, log logger, seq uint64, failed []ruleFailure) {
	if g == nil {
		return
	}
	for _, f := range failed {
		var be *BudgetError
		if !errors.As(f.err, &be) {
			continue
		}
		q, err := strike(ctx, g.states, g.r.set.Name, f.ruleID, seq, time.Now().UTC(), be.Error())
		switch {
		case err != nil:
			log.ErrorContext(ctx, "rule node: cannot record a budget overrun", "rule", f.ruleID, "err", err)
		case q:
			log.WarnContext(ctx, "rule node: rule over budget too often, quarantining it",
				"rule", f.ruleID, "strikes", QuarantineStrikes, "within", QuarantineWindow, "err", be,
				"resume", fmt.Sprintf("storeloop rules resume %s %s", g.r.set.Name, f.ruleID))
			if m := g.r.o.metrics; m != nil {
				m.RuleQuarantined(ctx, g.r.set.Name, f.ruleID)
			}
		}
	}
}

// Quarantined reports whether this runner sees rule ruleID quarantined
// (the state of its set's rules is followed as it changes, on every node).
func (r *Runner) Quarantined(ruleID string) bool {
	return r.guard.Load().quarantined(ruleID)
}
