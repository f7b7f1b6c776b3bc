package client

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
	"github.com/storeloop/storeloop/tracing"
)

// Cascades rebuilds the causal chains of every event in the stream from the
// events' meta (correlation and causation ids, hop, rule): which mutation
// caused which rule's writes. It needs no tracing backend, so it works when
// traces were sampled out.
func (c *Client) Cascades(ctx context.Context) ([]*projections.Cascade, error) {
	var evs []projections.CausalEvent
	err := c.History(ctx, "", func(ev *events.Event, hdr nats.Header) error {
		evs = append(evs, projections.CausalEvent{
			Subject:     events.EventSubject(ev.Bucket, ev.Type),
			Event:       ev,
			TraceParent: tracing.HeaderCarrier(hdr).Get(events.HeaderTraceParent),
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return projections.Cascades(evs), nil
}
