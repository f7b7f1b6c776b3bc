package storenode

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// replaySource is the stream as a rebuild reads it: on a NATS connection
// of its own, opened with the node's connection options (servers,
// credentials, TLS), so that a replay's bytes never share a connection's
// pending limits with the commands being served.
type replaySource struct {
	// ctx ends when the connection loses its server: a request or a read
	// in flight then may never be answered, and a rebuild reading through
	// ctx fails at once and is tried again, rather than waiting out its
	// deadline.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream // its info fetched once: the read ends at last
	last    uint64           // the stream's last sequence before the read
	created time.Time        // the stream's creation: its identity beside its name
}

func (n *Node) openReplay(ctx context.Context) (*replaySource, error) {
	o := n.nc.Opts
	o.Name += " replay"
	// The callbacks are about the node's connection (micro's service
	// stops itself from them when its connection closes): not this one's.
	o.ConnectedCB, o.DisconnectedCB, o.DisconnectedErrCB, o.ReconnectedCB, o.ClosedCB = nil, nil, nil, nil, nil
	o.DiscoveredServersCB, o.LameDuckModeHandler, o.ReconnectErrCB = nil, nil, nil
	o.AsyncErrorCB = func(_ *nats.Conn, _ *nats.Subscription, err error) {
		n.log.Warn("replay connection", "err", err)
	}
	r := &replaySource{}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	o.DisconnectedErrCB = func(_ *nats.Conn, err error) {
		r.cancel(fmt.Errorf("storenode: replay connection lost its server: %w", cmp.Or(err, nats.ErrDisconnected)))
	}
	nc, err := o.Connect()
	if err != nil {
		r.cancel(nil)
		return nil, fmt.Errorf("storenode: replay connection: %w", err)
	}
	r.nc = nc
	if r.js, err = jetstream.New(nc); err != nil {
		r.close()
		return nil, fmt.Errorf("storenode: replay: %w", err)
	}
	if r.stream, err = awaitStream(r.ctx, r.js, n.cfg.stream); err != nil {
		r.close()
		return nil, fmt.Errorf("storenode: replay stream %s: %w", n.cfg.stream, err)
	}
	r.last, r.created = r.stream.CachedInfo().State.LastSeq, r.stream.CachedInfo().Created
	return r, nil
}

func (r *replaySource) close() {
	r.nc.Close()
	r.cancel(nil)
}
