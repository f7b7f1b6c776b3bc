package rulenode

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// CascadeBucket is the KV bucket counting rule writes per correlation id
// for maxCascadeWrites: key <correlation id> (or "h-" and a hash of it
// when it is not a plain token), value the count in decimal. Counters
// expire CascadeWindow after their last change.
const (
	CascadeBucket = events.CascadeBucket
	CascadeWindow = events.CascadeWindow
)

// cascades counts rule writes per correlation id in [CascadeBucket].
type cascades struct{ kv jetstream.KeyValue }

func openCascades(ctx context.Context, js jetstream.JetStream) (*cascades, error) {
	kv, err := bindKV(ctx, js, CascadeBucket, "cascade counters")
	if err != nil {
		return nil, err
	}
	return &cascades{kv: kv}, nil
}

// admit adds the planned writes of the rules of one event to the count of
// correlation id corr, in rule order, except those of a rule whose limit
// (0: none) the count would pass: those are refused, with the count they
// would have reached. A redelivered event is counted again: the budget
// errs toward stopping.
func (c *cascades) admit(ctx context.Context, corr string, planned, limits []int) (refused map[int]int, err error) {
	err = casUpdate(ctx, c.kv, kvToken(corr), func(old []byte) ([]byte, bool, error) {
		var count int
		if old != nil {
			n, err := strconv.Atoi(string(old))
			if err != nil {
				return nil, false, fmt.Errorf("rulenode: cascade counter of %q is %q, not a number", corr, old)
			}
			count = n
		}
		refused = map[int]int{}
		next := count
		for i, n := range planned {
			if limits[i] > 0 && next+n > limits[i] {
				refused[i] = next + n
				continue
			}
			next += n
		}
		return []byte(strconv.Itoa(next)), next != count, nil
	})
	return refused, err
}
