package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// The rule benchmarks: events through rule runners against a raw
// JetStream consume loop, the latency of one store → rule → store cycle
// against the raw hops it is made of, and how runners sharing a consumer
// scale when the rule waits on something external.

// RuleFactory makes the rule set a benchmark runs: it reacts to inserts
// into the bucket in and writes to the bucket out (key field "id").
type RuleFactory func(name, in, out string) (*rulenode.RuleSet, error)

// UpsertRule is a YAML rule whose action is one upsert with an increment
// of the same record of out, per insert into in.
func UpsertRule(name, in, out string) (*rulenode.RuleSet, error) {
	src := fmt.Sprintf(`name: %s
rules:
  - id: count
    on: [bucket.%s.inserted]
    then:
      - upsert:
          bucket: %s
          key: all
          record: { id: all }
          increment: { count: 1 }
`, name, in, out)
	return rulenode.Load(strings.NewReader(src), name+".yaml")
}

// WaitingRule is a Go rule that waits d (standing for a call to an
// external service) and then makes UpsertRule's write.
func WaitingRule(d time.Duration) RuleFactory {
	return func(name, in, out string) (*rulenode.RuleSet, error) {
		return rulenode.NewRuleSet(name, &rulenode.Rule{
			ID:     "external-call",
			On:     []string{events.EventSubject(in, events.OpInserted)},
			Writes: []string{events.EventSubject(out, "*")},
			Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
				_, err := env.Store.Upsert(ctx, out, "all", events.Record{"id": "all"}, map[string]float64{"count": 1})
				return err
			},
		})
	}
}

// ruleRuns numbers the buckets and rule sets of each measurement, so every
// measurement starts from its own fresh consumer and events.
var ruleRuns atomic.Int64

// ruleBuckets defines a fresh source and target bucket.
func (e *Env) ruleBuckets(ctx context.Context) (name, in, out string, err error) {
	k := ruleRuns.Add(1)
	name, in, out = fmt.Sprintf("benchrules%d", k), fmt.Sprintf("rin%d", k), fmt.Sprintf("rout%d", k)
	defs := []events.BucketDef{
		{Bucket: in, Key: "id", Schema: map[string]events.FieldDef{
			"id":      {Type: events.TypeNumber, Generated: events.GenAutoincrement},
			"payload": {Type: events.TypeString, Required: true},
			"n":       {Type: events.TypeNumber},
		}},
		{Bucket: out, Key: "id", Schema: map[string]events.FieldDef{
			"id":    {Type: events.TypeString, Required: true},
			"count": {Type: events.TypeNumber, Default: 0.0},
		}},
	}
	for _, def := range defs {
		if err := e.Client.Define(ctx, def); err != nil {
			return "", "", "", err
		}
	}
	return name, in, out, nil
}

// insertInto is StoreInsert into another bucket.
func (e *Env) insertInto(bucket string) Op {
	b := e.Client.Bucket(bucket)
	rec := events.Record{"payload": string(payload[12:76]), "n": 1.0}
	return func(ctx context.Context) error {
		_, err := b.Insert(ctx, rec)
		return err
	}
}

// runners starts count runners of set, each on its own NATS connection as
// separate processes would be, and returns a stop function that ends them
// and reports the first error of their Run.
func (e *Env) runners(ctx context.Context, set *rulenode.RuleSet, count int, opts ...rulenode.RunnerOption) (rs []*rulenode.Runner, start func(), stop func() error, err error) {
	var conns []*nats.Conn
	closeAll := func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	for range count {
		nc, err := nats.Connect(e.Server.ClientURL())
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		conns = append(conns, nc)
		js, err := jetstream.New(nc)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		cl, err := client.New(nc)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		rs = append(rs, rulenode.NewRunner(js, cl, set, opts...))
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make([]error, count)
	start = func() {
		for i, r := range rs {
			wg.Go(func() { errs[i] = r.Run(rctx) })
		}
	}
	stop = func() error {
		cancel()
		wg.Wait()
		closeAll()
		return errors.Join(errs...)
	}
	return rs, start, stop, nil
}

// awaitEvents reads n events from w.
func awaitEvents(ctx context.Context, w *client.Watcher, n int) error {
	for i := range n {
		if _, err := w.Next(ctx); err != nil {
			return fmt.Errorf("write-back event %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}

// RuleThroughput puts n insert events in the stream, then times count
// runners of the rule set from rule (each with opts) working through them:
// from starting the runners (binding the consumer included) until a
// watcher has seen the n write-back events.
func (e *Env) RuleThroughput(ctx context.Context, n, count int, rule RuleFactory, opts ...rulenode.RunnerOption) (Result, error) {
	res := Result{Mode: e.Mode, Scenario: "rule-runner", Callers: count, Ops: n}
	name, in, out, err := e.ruleBuckets(ctx)
	if err != nil {
		return res, err
	}
	if _, err := Run(ctx, e.insertInto(in), n, 32); err != nil {
		return res, fmt.Errorf("load events: %w", err)
	}
	set, err := rule(name, in, out)
	if err != nil {
		return res, err
	}
	w, err := e.Client.Follow(ctx, events.EventSubject(out, "*"))
	if err != nil {
		return res, err
	}
	defer w.Stop()
	_, start, stop, err := e.runners(ctx, set, count, opts...)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	start()
	err = awaitEvents(ctx, w, n)
	res.Elapsed = time.Since(t0)
	return res, errors.Join(err, stop())
}

// RawConsume publishes n messages to the raw stream, then times a pull
// consumer (created in the timed part, as the runner's is) reading them
// one by one and acknowledging each. The ack is a plain Ack, not the
// runner's confirmed one: the raw loop is the floor, not a twin.
func (e *Env) RawConsume(ctx context.Context, n int) (Result, error) {
	res := Result{Mode: e.Mode, Scenario: "raw-consume-ack", Callers: 1, Ops: n}
	subject := fmt.Sprintf("benchraw.consume.%d", ruleRuns.Add(1))
	for range n {
		if _, err := e.JS.PublishAsync(subject, payload); err != nil {
			return res, err
		}
	}
	select {
	case <-e.JS.PublishAsyncComplete():
	case <-ctx.Done():
		return res, ctx.Err()
	}
	t0 := time.Now()
	cons, err := e.JS.CreateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return res, err
	}
	it, err := cons.Messages()
	if err != nil {
		return res, err
	}
	defer it.Stop()
	for range n {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return res, err
		}
		if err := msg.Ack(); err != nil {
			return res, err
		}
	}
	res.Elapsed = time.Since(t0)
	return res, nil
}

// CycleLatency measures n turns of the cycle (see Cycle) after a warm-up.
func (e *Env) CycleLatency(ctx context.Context, n int) (Latencies, error) {
	c, err := e.StartCycle(ctx)
	if err != nil {
		return nil, err
	}
	lat, err := c.Latencies(ctx, n)
	return lat, errors.Join(err, c.Close())
}

// Hops are latencies of the raw NATS operations a cycle is made of.
type Hops struct {
	// Request is a NATS request/reply round trip to a responder that
	// answers at once.
	Request Latencies
	// PubAck is a synchronous JetStream publish: until its ack.
	PubAck Latencies
	// Consume is a pull of one stored message by a pull consumer (one
	// round trip: the pull request and the message) and its plain Ack.
	Consume Latencies
}

// RawHops measures each hop n times, on the same server.
func (e *Env) RawHops(ctx context.Context, n int) (Hops, error) {
	var h Hops
	responder, err := nats.Connect(e.Server.ClientURL())
	if err != nil {
		return h, err
	}
	defer responder.Close()
	echo := fmt.Sprintf("benchecho.%d", ruleRuns.Add(1))
	if _, err := responder.Subscribe(echo, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		return h, err
	}
	if err := responder.Flush(); err != nil {
		return h, err
	}
	timed := func(dst *Latencies, op func() error) error {
		for range n {
			t0 := time.Now()
			if err := op(); err != nil {
				return err
			}
			*dst = append(*dst, time.Since(t0))
		}
		return nil
	}
	if err := timed(&h.Request, func() error {
		_, err := e.NC.RequestWithContext(ctx, echo, payload)
		return err
	}); err != nil {
		return h, err
	}
	subject := fmt.Sprintf("benchraw.hops.%d", ruleRuns.Add(1))
	if err := timed(&h.PubAck, func() error {
		_, err := e.JS.Publish(ctx, subject, payload)
		return err
	}); err != nil {
		return h, err
	}
	cons, err := e.JS.CreateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return h, err
	}
	err = timed(&h.Consume, func() error {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return err
		}
		return msg.Ack()
	})
	return h, err
}
