package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// StoreHealth is what a store node reports about its stream's integrity
// and its recovery at each metrics collection.
type StoreHealth struct {
	Quarantined     int64 // messages in the stream that are not the store's own events
	RebuildFailures int64 // consecutive failed rebuilds; 0 once one succeeds
}

// ObserveStore reports health() as the gauges storeloop.store.quarantined
// and storeloop.store.rebuild.failures. Unregister the returned
// registration when the node stops.
func (m *Metrics) ObserveStore(health func() StoreHealth) (metric.Registration, error) {
	q, err1 := m.meter.Int64ObservableGauge("storeloop.store.quarantined",
		metric.WithDescription("Messages in the event stream quarantined by the last replay: no valid proof of the store, a broken chain, or undecodable."),
		metric.WithUnit("{message}"))
	f, err2 := m.meter.Int64ObservableGauge("storeloop.store.rebuild.failures",
		metric.WithDescription("Consecutive failed attempts to rebuild the state after an append failed (retried with backoff; 0 when healthy)."),
		metric.WithUnit("{attempt}"))
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		h := health()
		o.ObserveInt64(q, h.Quarantined)
		o.ObserveInt64(f, h.RebuildFailures)
		return nil
	}, q, f)
}
