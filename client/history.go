package client

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// History calls fn for every bucket event in the stream whose subject
// matches filter ("" for all), in stream order, from the first to the last
// event stored when History was called, then returns. fn also gets the
// message headers (trace context, event id). Meta.Seq is filled in.
func (c *Client) History(ctx context.Context, filter string, fn func(ev *events.Event, hdr nats.Header) error) error {
	if filter == "" {
		filter = DefaultTailFilter
	}
	s, err := c.js.Stream(ctx, c.opts.stream)
	if err != nil {
		return fmt.Errorf("client: history: %w", err)
	}
	last := s.CachedInfo().State.LastSeq
	if last == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("client: history: %w", err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("client: history: %w", err)
	}
	defer msgs.Stop()
	for {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("client: history: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("client: history: %w", err)
		}
		if strings.HasPrefix(msg.Subject(), events.EventSubjectPrefix+".") && events.FilterCovers(filter, msg.Subject()) {
			ev, err := events.DecodeEvent(msg.Data())
			if err != nil {
				return fmt.Errorf("client: history: %s: %w", msg.Subject(), err)
			}
			ev.Meta.Seq = md.Sequence.Stream
			if err := fn(ev, msg.Headers()); err != nil {
				return err
			}
		}
		if md.Sequence.Stream >= last {
			return nil
		}
	}
}
