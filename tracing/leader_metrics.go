package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// Leadership is what a store node among several on one stream reports at
// each metrics collection.
type Leadership struct {
	Leader    bool  // holds the lease and serves
	Lag       int64 // stream events not yet folded into its state (a standby's)
	Failovers int64 // times this node became the leader
	// LeaseMoves counts the lease bucket leader's moves off the event
	// stream leader's server.
	LeaseMoves int64
}

// ObserveLeadership reports lead() as the gauges storeloop.store.leader
// (1 or 0) and storeloop.store.lag, and the counter
// storeloop.store.failovers and storeloop.store.lease_moves. Unregister the returned registration when
// the node stops.
func (m *Metrics) ObserveLeadership(lead func() Leadership) (metric.Registration, error) {
	l, err1 := m.meter.Int64ObservableGauge("storeloop.store.leader",
		metric.WithDescription("1 while this store node holds the stream's lease and serves commands, 0 while it is a standby."))
	g, err2 := m.meter.Int64ObservableGauge("storeloop.store.lag",
		metric.WithDescription("Events in the stream this store node has not folded into its state yet."),
		metric.WithUnit("{event}"))
	f, err3 := m.meter.Int64ObservableCounter("storeloop.store.failovers",
		metric.WithDescription("Times this store node acquired the lease and became the leader."),
		metric.WithUnit("{failover}"))
	mv, err4 := m.meter.Int64ObservableCounter("storeloop.store.lease_moves",
		metric.WithDescription("Times this store node, leading, moved the lease bucket's stream leader off the event stream leader's NATS server."),
		metric.WithUnit("{move}"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := lead()
		leader := int64(0)
		if s.Leader {
			leader = 1
		}
		o.ObserveInt64(l, leader)
		o.ObserveInt64(g, s.Lag)
		o.ObserveInt64(f, s.Failovers)
		o.ObserveInt64(mv, s.LeaseMoves)
		return nil
	}, l, g, f, mv)
}
