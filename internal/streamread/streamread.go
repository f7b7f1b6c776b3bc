// Package streamread reads a JetStream stream from its first message to
// the last one stored when the read began: what a store node replays at
// start and what `storeloop trace` rebuilds cascades from.
package streamread

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StallPeriod: a read that receives no message during a whole period
// (consumer creation included) has stalled, and fails with ErrStalled
// after one to two periods. The messages it reads exist, so silence means
// a request or consumer lost with a NATS server (its consumer's server
// died, the stream is between leaders); reading again is the fix, and
// waiting out the caller's deadline is not.
const StallPeriod = 5 * time.Second

// ErrStalled is the cause of a read that stalled (see StallPeriod).
var ErrStalled = errors.New("no message for a whole stall period")

// FetchBytes bounds the bytes of messages in flight to the reader: large
// enough for one message of the largest size a stream allows (4 MiB for
// the store's), small enough that the server never finds the reading
// connection a slow consumer (it allows 64 MiB pending per connection).
const FetchBytes = 16 << 20

// All calls fn for every message of stream, in order, with its stream
// sequence, up to the stream's last sequence when All was called, then
// returns. An error from fn stops the read and is returned as is.
// Sequences missing from the stream are skipped: fn sees the gap.
func All(ctx context.Context, js jetstream.JetStream, stream string, fn func(seq uint64, msg jetstream.Msg) error) error {
	return From(ctx, js, stream, 1, fn)
}

// From is All from sequence first on: the tail after a snapshot.
func From(ctx context.Context, js jetstream.JetStream, stream string, first uint64, fn func(seq uint64, msg jetstream.Msg) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", stream, err)
	}
	return Upto(ctx, s, first, fn)
}

// Upto is From for a stream already looked up: it reads up to the last
// sequence of s's cached info, so that a caller that needs that sequence
// too fetches the stream's info once and reads exactly to it.
func Upto(ctx context.Context, s jetstream.Stream, first uint64, fn func(seq uint64, msg jetstream.Msg) error) error {
	stream := s.CachedInfo().Config.Name
	state := s.CachedInfo().State
	if state.Msgs == 0 || first > state.LastSeq {
		return nil
	}
	ctx, progress, stop := watchStall(ctx)
	defer stop()
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(first, 1)})
	if err != nil {
		return fmt.Errorf("read stream %s: %w", stream, err)
	}
	it, err := c.Messages(jetstream.PullMaxBytes(FetchBytes))
	if err != nil {
		return fmt.Errorf("read stream %s: %w", stream, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("read stream %s: %w", stream, cmp.Or(context.Cause(ctx), err))
		}
		progress.Add(1)
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read stream %s: %w", stream, err)
		}
		if err := fn(md.Sequence.Stream, msg); err != nil {
			return err
		}
		// NumPending ends the read too when the last sequences are
		// missing (the stream keeps its last sequence past lost messages).
		if md.Sequence.Stream >= state.LastSeq || md.NumPending == 0 {
			return nil
		}
	}
}

// watchStall returns ctx ended with the cause ErrStalled once progress
// has not moved for a whole StallPeriod; stop ends the watch.
func watchStall(parent context.Context) (ctx context.Context, progress *atomic.Uint64, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	progress = new(atomic.Uint64)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(StallPeriod)
		defer tick.Stop()
		last := progress.Load()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				p := progress.Load()
				if p == last {
					cancel(ErrStalled)
					return
				}
				last = p
			}
		}
	}()
	return ctx, progress, func() {
		close(done)
		cancel(nil)
	}
}
