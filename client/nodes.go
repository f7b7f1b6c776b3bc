package client

import (
	"cmp"
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
)

// nodesQuiet is how long Nodes waits for more answers after the last one:
// every store node answers at once, leader and standbys alike.
const nodesQuiet = 300 * time.Millisecond

// Nodes asks every store node of the stream (on <prefix>.nodes) for its
// role, progress and lease, and returns the answers in arrival order. It
// returns once no answer came for a moment after the last one, or with
// what it has when the per-request timeout or ctx ends; no answer at all
// is unavailable. An answer that is not a node status (anyone allowed to
// publish to the inbox may send one) is skipped, not allowed to hide the
// store nodes' answers; it is the error only when nothing else came.
func (c *Client) Nodes(ctx context.Context) ([]events.NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	subject := events.CommandSubject(c.opts.prefix, events.CmdNodes)
	answers := make(chan *nats.Msg, 64)
	inbox := c.nc.NewInbox()
	sub, err := c.nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, unavailable(subject, err)
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(subject, inbox, []byte("{}")); err != nil {
		return nil, unavailable(subject, err)
	}
	var out []events.NodeStatus
	var bad error              // the first answer that was not a node status
	var quiet <-chan time.Time // nil until the first answer
	for {
		select {
		case m := <-answers:
			var ns events.NodeStatus
			if err := decodeReply(m.Data, &ns); err != nil {
				c.log.Debug("not a node status: skipped", "subject", subject, "err", err)
				bad = cmp.Or(bad, err)
			} else {
				out = append(out, ns)
			}
			quiet = time.After(nodesQuiet)
			continue
		case <-quiet:
		case <-ctx.Done():
		}
		break
	}
	if len(out) == 0 && bad != nil {
		return nil, bad
	}
	if len(out) == 0 {
		return nil, events.Errorf(events.CodeUnavailable, "no store node answered on %s", subject)
	}
	return out, nil
}
