package rulenode

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/provenance"
)

// consumerConfig is the durable consumer every runner of the set binds.
// Runners of the same set create it with the same configuration, so
// whichever starts first creates it and the others bind it. It starts
// where the runner's [StartPolicy] says; binding an existing consumer keeps
// its position.
//
// Retries are the runner's business, not the server's: a failed event is
// NAKed with the runner's backoff, and the runner counts deliveries
// against its MaxDeliver and dead-letters the event itself. So the
// server's MaxDeliver is unlimited (at its limit the server would drop the
// event silently, with no dead letter) and the consumer has no BackOff
// list (the server would replace AckWait with its first element, and a
// long action would be redelivered while still running). AckWait only
// matters when a runner dies holding an event.
func (r *Runner) consumerConfig() jetstream.ConsumerConfig {
	cfg := ruleSetConsumer(r.set.Name, r.set.Subjects(), r.o.ackWait)
	cfg.DeliverPolicy = r.o.start.deliverPolicy()
	return cfg
}

// ruleSetConsumer is the configuration of rule set name's consumer but
// for where it starts.
func ruleSetConsumer(name string, subjects []string, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "storeloop rule set " + name,
		FilterSubjects: subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxDeliver:     -1,
	}
}

// bind waits for the event stream and the dead-letter stream, which the
// store node creates, and creates or updates the set's consumer.
func (r *Runner) bind(ctx context.Context) (jetstream.Consumer, error) {
	stream, err := r.waitStream(ctx, r.o.stream, "event")
	if err != nil {
		return nil, err
	}
	if _, err := r.waitStream(ctx, r.o.deadLetters, "dead-letter"); err != nil {
		return nil, err
	}
	if !r.o.noProofCheck {
		if r.prov, err = provenance.New(r.js, r.o.stream, stream.CachedInfo()); err != nil {
			return nil, err
		}
	}
	if r.versions != nil {
		return r.versions.bind(ctx, r)
	}
	cfg := r.consumerConfig()
	existing, err := r.js.Consumer(ctx, r.o.stream, cfg.Durable)
	switch {
	case err == nil:
		// The start policy only places a new consumer: an existing one keeps
		// its position (the server refuses to change a deliver policy).
		have := existing.CachedInfo().Config
		if have.DeliverPolicy != cfg.DeliverPolicy {
			r.o.logger.InfoContext(ctx, "rule node: the consumer exists, keeping its position; the start policy applies only to a new consumer",
				"ruleSet", r.set.Name, "start", r.o.start, "consumerDeliverPolicy", have.DeliverPolicy.String())
		}
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("rulenode: consumer %s on %s: %w", cfg.Durable, r.o.stream, err)
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, r.o.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("rulenode: consumer %s on %s: %w", cfg.Durable, r.o.stream, err)
	}
	r.o.logger.InfoContext(ctx, "rule node: consumer bound", "ruleSet", r.set.Name, "stream", r.o.stream,
		"filters", cfg.FilterSubjects, "rules", len(r.set.Rules), "deliverPolicy", cfg.DeliverPolicy.String())
	return cons, nil
}

// deliverPolicy is the consumer deliver policy that starts there.
func (p StartPolicy) deliverPolicy() jetstream.DeliverPolicy {
	if p == StartNew {
		return jetstream.DeliverNewPolicy
	}
	return jetstream.DeliverAllPolicy
}

// waitStream returns the stream name (the event or dead-letter one: what)
// once it exists: a rule node may start before the store node that creates
// both. A rule node never creates a stream (its role may not: a stream
// could capture commands and replies).
func (r *Runner) waitStream(ctx context.Context, name, what string) (jetstream.Stream, error) {
	wait := 100 * time.Millisecond
	for {
		s, err := r.js.Stream(ctx, name)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("rulenode: %s stream %s: %w", what, name, err)
		}
		r.o.logger.InfoContext(ctx, "rule node: waiting for the store node to create the "+what+" stream", "stream", name, "retryIn", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// delivery is a fetched message and its decoded event (or why it is not one).
type delivery struct {
	msg jetstream.Msg
	ev  *events.Event
	err error
}

// shard picks the worker of a delivery: the same record always goes to the
// same worker, which keeps a record's events in order within the runner.
func (d delivery) shard(n int) int {
	if d.ev == nil {
		return 0
	}
	k, err := events.KeyString(d.ev.Key)
	if err != nil {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(d.ev.Bucket))
	h.Write([]byte{0})
	h.Write([]byte(k))
	return int(h.Sum32() % uint32(n))
}

// shardBuffer is how many deliveries wait for one worker. Without it the
// dispatcher waited on whichever worker the next event hashed to, so one
// busy worker held back the events of all the idle ones (measured: +25–30 %
// events/s at 32 workers with 8). A waiting delivery's AckWait runs, as in
// the client's own buffer; if a slow action outlasts it, the redelivered
// copy carries the same command ids, which the store applies once.
const shardBuffer = 8

// consume fetches events and hands them to the workers until ctx is done.
func (r *Runner) consume(ctx context.Context, cons jetstream.Consumer) error {
	// The client buffer holds as many events as there are workers: events
	// waiting in it are already delivered, and their AckWait is running.
	it, err := cons.Messages(jetstream.PullMaxMessages(r.o.concurrency))
	if err != nil {
		return fmt.Errorf("rulenode: fetch from consumer %s: %w", r.set.Name, err)
	}
	// Events in flight finish even when ctx ends: an action cut in half is
	// retried anyway, but finishing it saves the redelivery.
	work := context.WithoutCancel(ctx)
	shards := make([]chan delivery, r.o.concurrency)
	var wg sync.WaitGroup
	for i := range shards {
		ch := make(chan delivery, shardBuffer)
		shards[i] = ch
		wg.Go(func() {
			for d := range ch {
				r.handle(work, d)
			}
		})
	}
	stopDrain := context.AfterFunc(ctx, it.Drain)
	defer stopDrain()
	r.ready.Store(true)
	defer r.ready.Store(false)

	var runErr error
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			if ctx.Err() == nil {
				runErr = fmt.Errorf("rulenode: consumer %s: %w", r.set.Name, err)
			}
			break
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			it.Stop()
			runErr = fmt.Errorf("rulenode: consumer %s: %w", r.set.Name, err)
			break
		}
		if err != nil {
			// Missed heartbeats and the like: the iterator pulls again.
			r.o.logger.WarnContext(ctx, "rule node: fetch", "ruleSet", r.set.Name, "err", err)
			continue
		}
		if ctx.Err() != nil {
			// Fetched but not started when we were told to stop: hand it back
			// at once so another runner takes it. Not a failure, hence no
			// backoff.
			_ = msg.Nak()
			continue
		}
		d := delivery{msg: msg}
		d.ev, d.err = events.DecodeEvent(msg.Data())
		shards[d.shard(len(shards))] <- d
	}
	for _, ch := range shards {
		close(ch)
	}
	wg.Wait()
	return runErr
}

// keepAlive tells JetStream every AckWait/3 that msg is still being worked
// on, until the returned stop is called; after stop returns, no more
// progress is sent. A timer rather than a goroutine per event: most events
// finish long before the first tick.
func (r *Runner) keepAlive(msg jetstream.Msg) (stop func()) {
	var mu sync.Mutex
	stopped := false
	every := r.o.ackWait / 3
	mu.Lock() // t is set before the first tick reads it
	defer mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
