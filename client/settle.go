package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SettleOption configures [Client.Settle].
type SettleOption func(*settleOptions)

type settleOptions struct {
	ruleSets []string
	interval time.Duration
	stable   int
}

// Defaults of the settle options.
const (
	DefaultSettleInterval = 10 * time.Millisecond
	DefaultSettleStable   = 3
)

// SettleRuleSets waits for the consumers of these rule sets only (by
// default: every durable consumer with explicit acks on the stream). A
// named rule set whose consumer does not exist yet is not settled.
func SettleRuleSets(names ...string) SettleOption {
	return func(o *settleOptions) { o.ruleSets = append(o.ruleSets, names...) }
}

// SettleInterval sets the time between two checks (default 10ms).
func SettleInterval(d time.Duration) SettleOption {
	return func(o *settleOptions) { o.interval = d }
}

// SettleStable sets how many consecutive checks must find the system
// settled, with nothing moved in between (default 3).
func SettleStable(n int) SettleOption {
	return func(o *settleOptions) { o.stable = n }
}

// Settle waits until the rule cascade caused by the writes made so far has
// run out: every rule-set consumer on the event stream has been delivered
// every event its filters match and has acknowledged every delivery, and
// the store node has no command in flight. It returns nil once that holds
// on several consecutive checks, or an error wrapping ctx.Err() that says
// what was still moving. It polls; the context bounds the wait.
//
// Why each condition, and why several checks: a rule acknowledges its
// event only after the store acknowledged the rule's writes, and the store
// acknowledges a write only after its event is in the stream. So while a
// cascade runs, either some consumer has an unacknowledged delivery, or
// the stream holds an event some consumer has not been delivered yet.
// The second is checked exactly, not with the consumer's NumPending: the
// server updates NumPending asynchronously after an append, so just after
// a rule's write it can still read 0. Instead, for each consumer, the last
// stream sequence matching its filters (read after the consumer's state)
// must not be past the consumer's Delivered.Stream. The checks of one poll
// are not atomic: an event appended after the consumer states were read
// is seen by the next poll, whose stream LastSeq differs; the poll counts
// as stable only if LastSeq and every consumer's delivered and ack floors
// are what the previous poll saw. The store's InFlight covers commands it
// has received but not yet appended.
func (c *Client) Settle(ctx context.Context, opts ...SettleOption) error {
	o := settleOptions{interval: DefaultSettleInterval, stable: DefaultSettleStable}
	for _, opt := range opts {
		opt(&o)
	}
	if o.interval <= 0 || o.stable < 1 {
		return errors.New("client: settle interval must be positive and stable at least 1")
	}
	var prev []uint64
	stable := 0
	reason := "not checked yet"
	for {
		snap, why, err := c.settleCheck(ctx, o.ruleSets)
		switch {
		case ctx.Err() != nil:
			// The check was cut short: the previous reason is the news.
			return fmt.Errorf("client: not settled (%s): %w", reason, ctx.Err())
		case err != nil:
			reason, stable = err.Error(), 0
		case why != "":
			reason, stable = why, 0
		case slices.Equal(snap, prev):
			stable++
		default:
			reason, stable = "the stream or a consumer moved", 1
		}
		prev = snap
		if stable >= o.stable {
			return nil
		}
		t := time.NewTimer(o.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("client: not settled (%s): %w", reason, ctx.Err())
		case <-t.C:
		}
	}
}

// settleCheck makes one check. It returns a snapshot of what must not move
// between stable checks (the stream's LastSeq, then each consumer's
// delivered and ack-floor stream sequences), and why the system is not
// settled, or "".
func (c *Client) settleCheck(ctx context.Context, ruleSets []string) ([]uint64, string, error) {
	stream, err := c.js.Stream(ctx, c.opts.stream)
	if err != nil {
		return nil, "", fmt.Errorf("stream %s: %w", c.opts.stream, err)
	}
	snap := []uint64{stream.CachedInfo().State.LastSeq}

	infos, why, err := settleConsumers(ctx, stream, ruleSets)
	if err != nil || why != "" {
		return nil, why, err
	}
	for _, ci := range infos {
		snap = append(snap, ci.Delivered.Stream, ci.AckFloor.Stream)
	}
	// Read after the consumer states: an event this sees that a consumer
	// had not been delivered then is not settled.
	last := map[string]uint64{}
	for _, ci := range infos {
		if ci.NumAckPending > 0 {
			return snap, fmt.Sprintf("consumer %s has %d unacknowledged deliveries", ci.Name, ci.NumAckPending), nil
		}
		for _, f := range consumerFilters(ci.Config) {
			seq, ok := last[f]
			if !ok {
				if seq, err = lastMatching(ctx, stream, f); err != nil {
					return nil, "", err
				}
				last[f] = seq
			}
			if seq > ci.Delivered.Stream {
				return snap, fmt.Sprintf("consumer %s has not been delivered event %d (%s)", ci.Name, seq, f), nil
			}
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("store status: %w", err)
	}
	if st.InFlight > 0 {
		return snap, fmt.Sprintf("the store node has %d commands in flight", st.InFlight), nil
	}
	return snap, "", nil
}

// settleConsumers returns the consumers to wait for, in a stable order.
func settleConsumers(ctx context.Context, stream jetstream.Stream, ruleSets []string) ([]*jetstream.ConsumerInfo, string, error) {
	var infos []*jetstream.ConsumerInfo
	if len(ruleSets) > 0 {
		for _, name := range ruleSets {
			cons, err := stream.Consumer(ctx, name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, fmt.Sprintf("rule set %s has no consumer yet", name), nil
			}
			if err != nil {
				return nil, "", fmt.Errorf("consumer %s: %w", name, err)
			}
			infos = append(infos, cons.CachedInfo())
		}
		return infos, "", nil
	}
	list := stream.ListConsumers(ctx)
	for ci := range list.Info() {
		// Rule sets are durable and ack explicitly; tails and other
		// readers are neither and never "finish".
		if ci.Config.Durable != "" && ci.Config.AckPolicy == jetstream.AckExplicitPolicy {
			infos = append(infos, ci)
		}
	}
	if err := list.Err(); err != nil {
		return nil, "", fmt.Errorf("list consumers: %w", err)
	}
	slices.SortFunc(infos, func(a, b *jetstream.ConsumerInfo) int { return cmp.Compare(a.Name, b.Name) })
	return infos, "", nil
}

// consumerFilters returns a consumer's filter subjects; ">" for none.
func consumerFilters(cfg jetstream.ConsumerConfig) []string {
	switch {
	case len(cfg.FilterSubjects) > 0:
		return cfg.FilterSubjects
	case cfg.FilterSubject != "":
		return []string{cfg.FilterSubject}
	}
	return []string{">"}
}

// lastMatching returns the stream sequence of the last message on a
// subject matching filter, or 0.
func lastMatching(ctx context.Context, stream jetstream.Stream, filter string) (uint64, error) {
	msg, err := stream.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last message on %s: %w", filter, err)
	}
	return msg.Sequence, nil
}
