package client

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/streamread"
)

// History calls fn for every bucket event in the stream whose subject
// matches filter ("" for all), in stream order, from the first to the last
// event stored when History was called, then returns. fn also gets the
// message headers (trace context, event id). Meta.Seq is filled in.
func (c *Client) History(ctx context.Context, filter string, fn func(ev *events.Event, hdr nats.Header) error) error {
	if filter == "" {
		filter = DefaultTailFilter
	}
	return streamread.All(ctx, c.js, c.opts.stream, func(seq uint64, msg jetstream.Msg) error {
		if !strings.HasPrefix(msg.Subject(), events.EventSubjectPrefix+".") || !events.FilterCovers(filter, msg.Subject()) {
			return nil
		}
		ev, err := events.DecodeEvent(msg.Data())
		if err != nil {
			return fmt.Errorf("client: history: %s: %w", msg.Subject(), err)
		}
		ev.Meta.Seq = seq
		return fn(ev, msg.Headers())
	})
}
