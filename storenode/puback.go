package storenode

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stream's PubAcks for the store's single-message appends come back on
// one subscription of the node's own, read by the acker itself: the
// server answers a connection's publishes in order, so the acker takes
// the next reply instead of nats.go's async publish path (a goroutine per
// subscription handing each ack through a map and a future's channel),
// which cost ≈ 10 % of the store's CPU per write at 32 callers
// (docs/benchmarks.md, "The store's PubAck path"). Atomic batches keep
// nats.go's future: their ack comes after a run of plain publishes.

// maxPendingAcks bounds the appends published and not yet acknowledged,
// as WithPublishAsyncMaxPending does for nats.go's path: up to 10k expiry
// deletes (expiry.go, still that path) beside the commands' flights.
const maxPendingAcks = 16384

// errAckTimeout is an append no acknowledgement came for in time.
var errAckTimeout = errors.New("no acknowledgement from the stream")

// acks is the node's PubAck subscription. publish runs on the loop,
// wait and abandon on the acker.
type acks struct {
	sub    *nats.Subscription
	ch     chan *nats.Msg
	prefix string        // of the reply subjects: prefix + the append's id
	slots  chan struct{} // one per append awaiting its ack
	next   uint64        // the loop's last id
	held   *nats.Msg     // a reply past the one awaited, for the next wait
}

func subscribeAcks(nc *nats.Conn) (*acks, error) {
	a := &acks{
		ch:     make(chan *nats.Msg, 2*maxPendingAcks), // replies to abandoned appends may come late
		prefix: nc.NewRespInbox() + ".",
		slots:  make(chan struct{}, maxPendingAcks),
	}
	var err error
	if a.sub, err = nc.ChanSubscribe(a.prefix+"*", a.ch); err != nil {
		return nil, fmt.Errorf("storenode: ack subscription: %w", err)
	}
	return a, nil
}

// appendAck is what the acker waits on for one group's append: a reply on
// the node's subscription (id > 0), or nats.go's future.
type appendAck struct {
	id  uint64
	fut jetstream.PubAckFuture
}

// publish sends m with its PubAck addressed to the subscription, waiting
// up to timeout for a slot while maxPendingAcks appends are unanswered.
func (a *acks) publish(nc *nats.Conn, m *nats.Msg, timeout time.Duration) (appendAck, error) {
	select {
	case a.slots <- struct{}{}:
	default:
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case a.slots <- struct{}{}:
		case <-t.C:
			return appendAck{}, fmt.Errorf("%d appends unacknowledged for %s", maxPendingAcks, timeout)
		}
	}
	a.next++
	m.Reply = a.prefix + strconv.FormatUint(a.next, 10)
	if err := nc.PublishMsg(m); err != nil {
		<-a.slots
		return appendAck{}, err
	}
	return appendAck{id: a.next}, nil
}

// wait returns the sequence w was stored at, or why not: a
// *jetstream.APIError when the stream refused it, errAckTimeout when
// timeout fired first, another error when its fate is unknown.
func (a *acks) wait(w appendAck, timeout <-chan time.Time) (uint64, error) {
	if w.fut != nil {
		select {
		case ack := <-w.fut.Ok():
			return ack.Sequence, nil
		case err := <-w.fut.Err():
			return 0, err
		case <-timeout:
			return 0, errAckTimeout
		}
	}
	for {
		m := a.held
		a.held = nil
		if m == nil {
			select {
			case m = <-a.ch:
			case <-timeout:
				return 0, errAckTimeout
			}
		}
		id, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, a.prefix), 10, 64)
		switch {
		case err != nil || id < w.id:
			continue // a late reply to an append given up on
		case id > w.id:
			// Replies come in order: w's was lost.
			a.held = m
			<-a.slots
			return 0, fmt.Errorf("the stream's acknowledgement of append %d was lost", w.id)
		}
		<-a.slots
		return parsePubAck(m)
	}
}

// abandon gives up on w's reply, freeing its slot; a late reply is skipped.
func (a *acks) abandon(w appendAck) {
	if w.fut == nil {
		<-a.slots
	}
}

func (a *acks) close() {
	a.sub.Unsubscribe()
}

// parsePubAck reads the stream's reply to a publish: the sequence it was
// stored at, a *jetstream.APIError when the stream refused it, or another
// error (no stream answered, a reply it cannot read) when its fate is unknown.
func parsePubAck(m *nats.Msg) (uint64, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return 0, jetstream.ErrNoStreamResponse
	}
	var ack struct {
		Stream string              `json:"stream"`
		Seq    uint64              `json:"seq"`
		Error  *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return 0, fmt.Errorf("storenode: unreadable acknowledgement %.100q: %w", m.Data, err)
	}
	switch {
	case ack.Error != nil:
		return 0, ack.Error
	case ack.Stream == "" || ack.Seq == 0:
		return 0, fmt.Errorf("storenode: acknowledgement without a stream sequence: %.100q", m.Data)
	}
	return ack.Seq, nil
}
