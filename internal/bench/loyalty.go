package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// The loyalty work of `storeloop bench rules` (issue 10): an order's
// "shipped" update event is consumed, the rule's condition evaluated, one
// loyalty record written (an upsert incrementing the user's points), and
// the event acknowledged. Storeloop does it with a rule runner; the raw loop
// and peers (bench/peers) do the same work by hand on the raw stream.

// loyaltyUsers is how many loyalty records the events are spread over.
const loyaltyUsers = 1000

// LoyaltyRule is the rule set: the (and the README's) loyalty rule.
func LoyaltyRule(name, orders, loyalty string) (*rulenode.RuleSet, error) {
	return rulenode.Load(strings.NewReader(loyaltyYAML(name, orders, loyalty)), name+".yaml")
}

// loyaltyYAML is LoyaltyRule's source, as a rule file for rulenode.
func loyaltyYAML(name, orders, loyalty string) string {
	return fmt.Sprintf(`name: %s
rules:
  - id: loyalty-on-ship
    on: [bucket.%s.updated]
    when: event.oldRecord.status != 'shipped' && event.newRecord.status == 'shipped'
    then:
      - upsert:
          bucket: %s
          key: ${event.newRecord.userId}
          record: { userId: "${event.newRecord.userId}" }
          increment: { points: "${int(event.newRecord.total / 10)}" }
`, name, orders, loyalty)
}

// ShippedEffect is the rule by hand, for the raw loop and peers: it decodes
// an event body and, if it ships an order, returns the loyalty write
// ({"userId","points"}) that the rule would make.
func ShippedEffect(body []byte) (write []byte, ok bool, err error) {
	var ev events.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, false, err
	}
	if ev.OldRecord["status"] == "shipped" || ev.NewRecord["status"] != "shipped" {
		return nil, false, nil
	}
	total, _ := ev.NewRecord["total"].(float64)
	write, err = json.Marshal(struct {
		UserID any   `json:"userId"`
		Points int64 `json:"points"`
	}{ev.NewRecord["userId"], int64(total / 10)})
	return write, err == nil, err
}

// orderTotal is the total of the i-th order: points vary by order.
func orderTotal(i int) float64 { return float64(10 + i%50*10) }

// expectedPoints is what the rule awards for orders 0 … n-1 in all.
func expectedPoints(n int) float64 {
	var sum float64
	for i := range n {
		sum += float64(int64(orderTotal(i) / 10))
	}
	return sum
}

// nextRun numbers buckets, rule sets and raw subjects, so that every
// measurement starts fresh.
func (e *Env) nextRun() int64 { return ruleRuns.Add(1) }

// orderLoad is an orders bucket whose "shipped" update events the runners
// work through: how many there are and the points the rule awards for them.
type orderLoad struct {
	bucket  string
	shipped int
	points  float64
}

// shippedOrders defines a fresh orders bucket, inserts n orders and ships
// each: n inserted and n "shipped" update events.
func (e *Env) shippedOrders(ctx context.Context, n int) (*orderLoad, error) {
	o := &orderLoad{bucket: fmt.Sprintf("orders%d", e.nextRun())}
	err := e.Client.Define(ctx, events.BucketDef{Bucket: o.bucket, Key: "id", Schema: map[string]events.FieldDef{
		"id":     {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"userId": {Type: events.TypeString, Required: true},
		"total":  {Type: events.TypeNumber, Required: true},
		"status": {Type: events.TypeString, Required: true},
	}})
	if err != nil {
		return nil, err
	}
	b := e.Client.Bucket(o.bucket)
	keys := make([]any, n)
	if err := runIndexed(ctx, n, 32, func(ctx context.Context, i int) error {
		rec, err := b.Insert(ctx, events.Record{"userId": fmt.Sprintf("u%d", i%loyaltyUsers), "total": orderTotal(i), "status": "new"})
		keys[i] = rec["id"]
		return err
	}); err != nil {
		return nil, fmt.Errorf("insert orders: %w", err)
	}
	if err := runIndexed(ctx, n, 32, func(ctx context.Context, i int) error {
		_, err := b.Update(ctx, keys[i], events.Record{"status": "shipped"})
		return err
	}); err != nil {
		return nil, fmt.Errorf("ship orders: %w", err)
	}
	o.shipped, o.points = n, expectedPoints(n)
	return o, nil
}

// runIndexed calls op once for each of 0 … n-1, from callers goroutines.
func runIndexed(ctx context.Context, n, callers int, op func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	_, err := Run(ctx, func(ctx context.Context) error { return op(ctx, int(next.Add(1)-1)) }, n, callers)
	return err
}

// awaitCondition polls cond every 10 ms until it holds, fails or ctx ends:
// the end of a measurement is a state of the server. Polling more often
// costs measurable CPU in the figures (at 2 ms, 1.9 % of the profile).
func awaitCondition(ctx context.Context, cond func(ctx context.Context) (bool, error)) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// errShort is returned when a loop ends a measurement with work missing.
var errShort = errors.New("bench: loop did not finish its work")

// subjectCount is how many messages of subject the raw stream holds.
func (e *Env) subjectCount(ctx context.Context, subject string) (uint64, error) {
	s, err := e.JS.Stream(ctx, rawStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// copyFrom publishes to the raw stream's subject to the bodies of the
// first n events on filter of src's store stream, so the raw loops get the
// very events the runners do.
func (e *Env) copyFrom(ctx context.Context, src *Env, filter, to string, n int) error {
	s, err := src.JS.Stream(ctx, events.DefaultStream)
	if err != nil {
		return err
	}
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return err
	}
	for range n {
		msg, err := oc.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return err
		}
		// A loaded box drains the acks slowly: wait for room, not 200 ms.
		if _, err := e.JS.PublishAsync(to, msg.Data(), jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	select {
	case <-e.JS.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Work is what a raw-side loop is given: consume the event bodies on
// subject In of stream Stream (a durable pull consumer of its own), write
// each event's effect (ShippedEffect) with a synchronous publish to Out,
// then acknowledge; at most InFlight events at a time.
type Work struct {
	URL      string
	Stream   string
	In, Out  string
	Consumer string
	InFlight int
}

// Loop is a raw-side implementation of the work: Start begins it and
// returns the function that stops it.
type Loop struct {
	Name  string
	Start func(ctx context.Context, w Work) (stop func() error, err error)
}

// RawLoop is plain nats.go: a pull consumer's messages handed to InFlight
// workers, each decoding, evaluating, publishing the write and waiting for
// its ack, then acknowledging the event (a plain Ack, as the runner does).
var RawLoop = Loop{Name: "raw nats.go", Start: startRawLoop}

func startRawLoop(ctx context.Context, w Work) (func() error, error) {
	nc, err := nats.Connect(w.URL, nats.Name("bench raw loop"))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := js.CreateConsumer(ctx, w.Stream, jetstream.ConsumerConfig{
		Durable: w.Consumer, FilterSubject: w.In, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	msgs := make(chan jetstream.Msg)
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-done: // stopping: left unacknowledged
		}
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	errs := make(chan error, w.InFlight)
	for range w.InFlight {
		go func() {
			errs <- func() error {
				for {
					select {
					case <-done:
						return nil
					case m := <-msgs:
						write, ok, err := ShippedEffect(m.Data())
						if err != nil {
							return err
						}
						if ok {
							if _, err := js.Publish(ctx, w.Out, write); err != nil {
								return err
							}
						}
						if err := m.Ack(); err != nil {
							return err
						}
					}
				}
			}()
		}()
	}
	return func() error {
		close(done)
		cc.Stop()
		var all []error
		for range w.InFlight {
			all = append(all, <-errs)
		}
		nc.Close()
		return errors.Join(all...)
	}, nil
}
