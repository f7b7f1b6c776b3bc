package rulenode

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/storeloop/storeloop/events"
)

// Budget caps what a rule may write, against a cascade that runs away
// without looping (a fan-out of thousands of writes per event). A zero
// field is unlimited: budgets are off unless set. A rule set's budget
// applies to each of its rules; a rule's own value of a field wins.
type Budget struct {
	// MaxWritesPerEvent caps the store writes one rule makes for one event
	// (a tx counts its operations). A YAML rule's writes are counted
	// before any is made (a forEach counts its items first, against the
	// store as it is then): over the cap, the rule writes nothing for the
	// event, which is dead-lettered at once (reason budget). A Go
	// handler's write past the cap is refused instead (the ones before it
	// were made).
	MaxWritesPerEvent int
	// MaxCascadeWrites caps the rule writes under one correlation id,
	// across hops, rule nodes and every rule set that sets it; the write
	// from outside that started the cascade does not count. Counted in
	// the KV bucket [CascadeBucket] before the writes are made; over the
	// cap, the rule writes nothing for the event (reason budget).
	MaxCascadeWrites int
	// Rate is the writes per second the rule makes in one rule node
	// process: a burst is smoothed (writes wait for their turn, none is
	// dropped), with bursts of up to max(1, Rate) writes at once.
	Rate float64
}

// Budget keys of a rule set and of a rule in a rule file.
const (
	KeyMaxWritesPerEvent = "maxWritesPerEvent"
	KeyMaxCascadeWrites  = "maxCascadeWrites"
	KeyRate              = "rate"
)

var budgetKeys = []string{KeyMaxWritesPerEvent, KeyMaxCascadeWrites, KeyRate}

// Bounds of the budget keys.
const (
	MaxBudgetWrites = 1 << 30
	MaxRate         = 1e6
)

// ReasonBudget: a rule's writes for the event would exceed its
// maxWritesPerEvent or maxCascadeWrites; the rule wrote nothing for it.
const ReasonBudget = "budget"

// over returns b with r's set fields in place of b's.
func (b Budget) over(r Budget) Budget {
	if r.MaxWritesPerEvent > 0 {
		b.MaxWritesPerEvent = r.MaxWritesPerEvent
	}
	if r.MaxCascadeWrites > 0 {
		b.MaxCascadeWrites = r.MaxCascadeWrites
	}
	if r.Rate > 0 {
		b.Rate = r.Rate
	}
	return b
}

// BudgetOf is the budget rule r runs under in set rs.
func (rs *RuleSet) BudgetOf(r *Rule) Budget { return rs.Budget.over(r.Budget) }

// hasBudgets reports whether any rule of the set runs under a budget.
func (rs *RuleSet) hasBudgets() bool {
	for _, r := range rs.Rules {
		if rs.BudgetOf(r) != (Budget{}) {
			return true
		}
	}
	return false
}

// BudgetError is a rule stopped on an event by its budget: it wrote
// nothing for it (but see [Budget.MaxWritesPerEvent] for Go handlers). It
// is permanent: a runner dead-letters the event at once, reason budget.
type BudgetError struct {
	RuleID string
	Key    string // KeyMaxWritesPerEvent or KeyMaxCascadeWrites
	Limit  int
	Writes int // the writes it would have reached
}

func (e *BudgetError) Error() string {
	if e.Key == KeyMaxCascadeWrites {
		return fmt.Sprintf("rule %q: its writes would bring the cascade to %d writes, over its %s %d", e.RuleID, e.Writes, e.Key, e.Limit)
	}
	return fmt.Sprintf("rule %q: %d writes for one event, over its %s %d", e.RuleID, e.Writes, e.Key, e.Limit)
}

// budget reads the budget keys of a rule set's or a rule's fields.
func (l *loader) budget(f map[string]*yaml.Node, base string) Budget {
	var b Budget
	count := func(key string, dst *int) {
		n := f[key]
		if n == nil {
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(dst) != nil || *dst < 1 || *dst > MaxBudgetWrites {
			l.errf(n, join(base, key), "want a whole number from 1 to %d", MaxBudgetWrites)
		}
	}
	count(KeyMaxWritesPerEvent, &b.MaxWritesPerEvent)
	count(KeyMaxCascadeWrites, &b.MaxCascadeWrites)
	if n := f[KeyRate]; n != nil {
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || tag != "!!int" && tag != "!!float" || n.Decode(&b.Rate) != nil ||
			math.IsNaN(b.Rate) || b.Rate <= 0 || b.Rate > MaxRate {
			l.errf(n, join(base, KeyRate), "want a number of writes per second above 0, at most %g", MaxRate)
		}
	}
	return b
}

// plannedWrites counts the store writes rule would make for e's event,
// without making them: its actions run against a store that answers
// queries from st and counts writes. Nothing is logged or published. A Go
// handler cannot be run without its effects: it counts 0 here and is held
// to its budget as it writes ([budgetStore]).
func plannedWrites(ctx context.Context, rule *Rule, e *evalEvent, st Store) (int, error) {
	if rule.Handler != nil {
		return 0, nil
	}
	c := &writeCounter{Store: st}
	err := rule.execute(ctx, e, Env{Store: c, Logger: slog.New(slog.DiscardHandler)})
	return c.n, err
}

// writeCounter is the store of plannedWrites: reads go through, writes
// and publishes are only counted (publishes are not store writes).
type writeCounter struct {
	Store
	n int
}

func (c *writeCounter) Insert(context.Context, string, events.Record) (events.Record, error) {
	c.n++
	return events.Record{}, nil
}

func (c *writeCounter) Update(context.Context, string, any, events.Record, map[string]float64, ...WriteOption) (events.Record, error) {
	c.n++
	return events.Record{}, nil
}

func (c *writeCounter) Upsert(context.Context, string, any, events.Record, map[string]float64) (events.Record, error) {
	c.n++
	return events.Record{}, nil
}

func (c *writeCounter) Delete(context.Context, string, any, ...WriteOption) (bool, error) {
	c.n++
	return true, nil
}

func (c *writeCounter) Tx(_ context.Context, ops []events.TxOp, _ ...events.TxRead) ([]any, error) {
	c.n += len(ops)
	return make([]any, len(ops)), nil
}

func (c *writeCounter) Publish(context.Context, string, []byte) error { return nil }

// budgetStore holds the writes of one rule on one event to the rule's
// budget as they are made: each waits for the rule's rate, and a write
// past MaxWritesPerEvent is refused (the planned count can be outrun when
// the data a forEach queries grows in between, and a Go handler has no
// planned count).
type budgetStore struct {
	Store
	rule   string
	budget Budget
	rate   *tokenBucket // nil: no rate
	n      int
}

func (s *budgetStore) take(ctx context.Context, writes int) error {
	s.n += writes
	if limit := s.budget.MaxWritesPerEvent; limit > 0 && s.n > limit {
		return &BudgetError{RuleID: s.rule, Key: KeyMaxWritesPerEvent, Limit: limit, Writes: s.n}
	}
	if s.rate == nil {
		return nil
	}
	return s.rate.wait(ctx, writes)
}

func (s *budgetStore) Insert(ctx context.Context, bucket string, rec events.Record) (events.Record, error) {
	if err := s.take(ctx, 1); err != nil {
		return nil, err
	}
	return s.Store.Insert(ctx, bucket, rec)
}

func (s *budgetStore) Update(ctx context.Context, bucket string, key any, changes events.Record, inc map[string]float64, opts ...WriteOption) (events.Record, error) {
	if err := s.take(ctx, 1); err != nil {
		return nil, err
	}
	return s.Store.Update(ctx, bucket, key, changes, inc, opts...)
}

func (s *budgetStore) Upsert(ctx context.Context, bucket string, key any, rec events.Record, inc map[string]float64) (events.Record, error) {
	if err := s.take(ctx, 1); err != nil {
		return nil, err
	}
	return s.Store.Upsert(ctx, bucket, key, rec, inc)
}

func (s *budgetStore) Delete(ctx context.Context, bucket string, key any, opts ...WriteOption) (bool, error) {
	if err := s.take(ctx, 1); err != nil {
		return false, err
	}
	return s.Store.Delete(ctx, bucket, key, opts...)
}

func (s *budgetStore) Tx(ctx context.Context, ops []events.TxOp, reads ...events.TxRead) ([]any, error) {
	if err := s.take(ctx, len(ops)); err != nil {
		return nil, err
	}
	return s.Store.Tx(ctx, ops, reads...)
}

// tokenBucket paces writes at rate per second with bursts of up to burst.
// Waiters reserve their tokens in arrival order, so a burst is spread out,
// not reordered or dropped.
type tokenBucket struct {
	rate, burst float64
	now         func() time.Time
	sleep       func(context.Context, time.Duration) error

	mu     sync.Mutex
	tokens float64 // may go negative: tokens reserved ahead
	last   time.Time
}

func newTokenBucket(rate float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: max(1, rate), tokens: max(1, rate), now: time.Now, sleep: sleepCtx}
}

// reserve takes n tokens and returns how long the caller must wait until
// they are its own.
func (b *tokenBucket) reserve(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// wait blocks until n tokens are the caller's, or ctx is done.
func (b *tokenBucket) wait(ctx context.Context, n int) error {
	if d := b.reserve(n); d > 0 {
		return b.sleep(ctx, d)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
