package storenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// The lease bucket and the event stream are separate Raft groups, each
// electing its own leader. When one server leads both, its loss stops the
// appends (the event stream's election, 4–9 s) and the lease renewals at
// once: the 1.5 s lease runs out during the election and a store failover
// follows it. So the leader keeps the lease bucket's stream leader on
// another server than the event stream's: it compares the two every
// leasePlacementEvery and, when they coincide, asks the lease bucket's
// stream to step down in favour of one of its current followers
// (JSApiLeaderStepdownRequest with a preferred server, nats-server 2.11+).
// The handover is one Raft round; a renewal in it is retried within the
// lease. A cluster of one server, or a lease bucket of one replica, has
// nothing to move.

// leasePlacementEvery is how often the leader checks the placement: an
// election after a server's loss takes 4 s at least, and the next loss
// should find the leaders apart again.
const leasePlacementEvery = 2 * time.Second

// leaseStream is the stream of the lease bucket.
const leaseStream = "KV_" + events.LeaseBucket

// keepLeaseApart checks the placement while the node leads, until ctx
// ends. A lease bucket of one replica (as its creator's --replicas set
// it) has no follower to move to: then nothing is checked, so a single
// server gets no stream info requests every leasePlacementEvery.
func (n *Node) keepLeaseApart(ctx context.Context) {
	if ls, err := n.js.Stream(ctx, leaseStream); err == nil && ls.CachedInfo().Config.Replicas < 2 {
		return
	}
	t := time.NewTicker(leasePlacementEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.lead.leading.Load() {
			continue
		}
		try, cancel := context.WithTimeout(ctx, leasePlacementEvery)
		err := n.placeLease(try)
		cancel()
		if err != nil && ctx.Err() == nil {
			n.log.Debug("lease bucket placement not checked", "err", err)
		}
	}
}

// placeLease moves the lease bucket's stream leader off the event stream
// leader's server if it is there and a current follower can take it.
func (n *Node) placeLease(ctx context.Context) error {
	es, err := n.js.Stream(ctx, n.cfg.stream)
	if err != nil {
		return err
	}
	ls, err := n.js.Stream(ctx, leaseStream)
	if err != nil {
		return err
	}
	ec, lc := es.CachedInfo().Cluster, ls.CachedInfo().Cluster
	if ec == nil || lc == nil || ec.Leader == "" || lc.Leader != ec.Leader {
		return nil
	}
	to := ""
	for _, p := range lc.Replicas {
		if p.Current && !p.Offline && p.Name != ec.Leader {
			to = p.Name
			break
		}
	}
	if to == "" {
		return nil // one replica, or no follower is current: nothing to move to yet
	}
	if err := stepDownTo(ctx, n.js, leaseStream, to); err != nil {
		return fmt.Errorf("lease bucket leader stepdown to %s: %w", to, err)
	}
	n.lead.leaseMoves.Add(1)
	n.log.Info("lease bucket leader moved off the event stream leader's server", "stream", n.cfg.stream,
		"server", lc.Leader, "to", to)
	return nil
}

// stepDownTo asks stream's leader to hand its leadership to the server
// named to.
func stepDownTo(ctx context.Context, js jetstream.JetStream, stream, to string) error {
	req, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": to}})
	if err != nil {
		return err
	}
	msg, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, req)
	if err != nil {
		return err
	}
	var resp struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return err
	}
	switch {
	case resp.Error != nil:
		return resp.Error
	case !resp.Success:
		return errors.New("not done")
	}
	return nil
}
