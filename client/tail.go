package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// TailOption chooses where a [Watcher] starts; the default is only events
// appended after [Client.Follow] returns.
type TailOption func(*jetstream.OrderedConsumerConfig)

// FromBeginning delivers every event still in the stream, then new ones.
func FromBeginning() TailOption {
	return func(c *jetstream.OrderedConsumerConfig) {
		c.DeliverPolicy = jetstream.DeliverAllPolicy
		c.OptStartSeq = 0
	}
}

// FromSequence delivers events from stream sequence seq on (see Meta.Seq).
func FromSequence(seq uint64) TailOption {
	return func(c *jetstream.OrderedConsumerConfig) {
		c.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		c.OptStartSeq = seq
	}
}

// OnlyNew delivers only events appended after [Client.Follow] returns (the
// default).
func OnlyNew() TailOption {
	return func(c *jetstream.OrderedConsumerConfig) {
		c.DeliverPolicy = jetstream.DeliverNewPolicy
		c.OptStartSeq = 0
	}
}

// DefaultTailFilter matches every bucket event.
const DefaultTailFilter = events.EventSubjectPrefix + ".>"

// Watcher reads bucket events in stream order from an ordered consumer. It
// is not safe for concurrent use; call [Watcher.Stop] when done.
type Watcher struct {
	msgs jetstream.MessagesContext
}

// Follow starts reading the events whose subjects match filter (NATS
// wildcards; "" means every bucket event, e.g. "bucket.orders.>" for one
// bucket). The consumer exists when Follow returns, so with the default
// [OnlyNew] every event appended afterwards is delivered.
func (c *Client) Follow(ctx context.Context, filter string, opts ...TailOption) (*Watcher, error) {
	if filter == "" {
		filter = DefaultTailFilter
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	for _, o := range opts {
		o(&cfg)
	}
	cons, err := c.js.OrderedConsumer(ctx, c.opts.stream, cfg)
	if err != nil {
		return nil, c.streamError("watch "+filter, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("client: watch %s: %w", filter, err)
	}
	return &Watcher{msgs: msgs}, nil
}

// Next blocks until the next event, ctx is done, or the watcher stops. The
// event's Meta.Seq is its stream sequence. Messages on the stream that are
// not bucket events (bucket definitions, when the filter matches them) are
// skipped.
func (w *Watcher) Next(ctx context.Context) (*events.Event, error) {
	for {
		msg, err := w.msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(msg.Subject(), events.EventSubjectPrefix+".") {
			continue
		}
		ev, err := events.DecodeEvent(msg.Data())
		if err != nil {
			return nil, fmt.Errorf("client: %s: %w", msg.Subject(), err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("client: %s: %w", msg.Subject(), err)
		}
		ev.Meta.Seq = md.Sequence.Stream
		return ev, nil
	}
}

// Stop ends the watch; Next then returns jetstream.ErrMsgIteratorClosed.
func (w *Watcher) Stop() { w.msgs.Stop() }

// Tail calls fn for each event matching filter, in stream order, until ctx
// is done (it then returns nil) or fn returns an error (returned as is).
func (c *Client) Tail(ctx context.Context, filter string, fn func(*events.Event) error, opts ...TailOption) error {
	w, err := c.Follow(ctx, filter, opts...)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// streamError is err from reaching the event stream while doing what: a
// stream or JetStream that is not there is unavailable.
func (c *Client) streamError(what string, err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return fmt.Errorf("%w: %w", events.Errorf(events.CodeUnavailable, "event stream %s", c.opts.stream), err)
	}
	return fmt.Errorf("client: %s: %w", what, err)
}
