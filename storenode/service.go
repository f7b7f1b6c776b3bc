package storenode

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/storeloop/storeloop/events"
)

// ServiceName is the NATS micro service name (`nats micro ls` shows it).
const ServiceName = "storeloop-store"

// Version is the store node's service version.
const Version = "0.1.0"

// pending is one command on its way through the node.
type pending struct {
	cmd      string
	req      micro.Request
	body     any // the decoded request, a pointer to an events.*Request
	cmdID    string
	cause    events.Meta // correlation, causation, hop and rule from the headers
	received time.Time
	reply    []byte
}

// mutating reports whether the command writes.
func (p *pending) mutating() bool {
	switch p.cmd {
	case events.CmdDefine, events.CmdInsert, events.CmdUpdate, events.CmdUpsert, events.CmdDelete, events.CmdTx:
		return true
	}
	return false
}

func newRequestBody(cmd string) any {
	switch cmd {
	case events.CmdDefine:
		return &events.DefineRequest{}
	case events.CmdBuckets:
		return &events.BucketsRequest{}
	case events.CmdInsert:
		return &events.InsertRequest{}
	case events.CmdGet:
		return &events.GetRequest{}
	case events.CmdUpdate:
		return &events.UpdateRequest{}
	case events.CmdUpsert:
		return &events.UpsertRequest{}
	case events.CmdDelete:
		return &events.DeleteRequest{}
	case events.CmdQuery:
		return &events.QueryRequest{}
	case events.CmdCount:
		return &events.CountRequest{}
	case events.CmdAggregate:
		return &events.AggregateRequest{}
	case events.CmdTx:
		return &events.TxRequest{}
	case events.CmdStatus:
		return &struct{}{}
	}
	return nil
}

func (n *Node) serve() error {
	svc, err := micro.AddService(n.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "storeloop store node: bucket commands over request/reply",
	})
	if err != nil {
		return fmt.Errorf("storenode: micro service: %w", err)
	}
	g := svc.AddGroup(n.cfg.prefix)
	for _, cmd := range events.Commands {
		if err := g.AddEndpoint(cmd, n.handler(cmd)); err != nil {
			svc.Stop()
			return fmt.Errorf("storenode: endpoint %s: %w", cmd, err)
		}
	}
	n.svc = svc
	return nil
}

// handler decodes a request on the subscription's goroutine (in parallel
// with the loop) and queues it; the loop replies.
func (n *Node) handler(cmd string) micro.HandlerFunc {
	return func(r micro.Request) {
		p := &pending{cmd: cmd, req: r, received: time.Now()}
		if e := p.decode(); e != nil {
			r.Respond(marshalReply(nil, e))
			return
		}
		if p.mutating() {
			if reason := n.Status().Reason; reason != "" {
				r.Respond(marshalReply(nil, events.Errorf(events.CodeUnavailable, "%s", reason)))
				return
			}
		}
		n.enqueue(p)
	}
}

func (p *pending) decode() *events.Error {
	p.body = newRequestBody(p.cmd)
	if e := decodeRequest(p.req.Data(), p.body); e != nil {
		return e
	}
	h := p.req.Headers()
	p.cmdID = h.Get(events.HeaderCommandID)
	if len(p.cmdID) > 256 {
		return events.Errorf(events.CodeBadRequest, "%s is longer than 256 bytes", events.HeaderCommandID)
	}
	p.cause.CorrelationID = h.Get(events.HeaderCorrelationID)
	p.cause.CausationID = h.Get(events.HeaderCausationID)
	p.cause.RuleID = h.Get(events.HeaderRule)
	if hop := h.Get(events.HeaderHop); hop != "" {
		v, err := strconv.Atoi(hop)
		if err != nil || v < 0 {
			return events.Errorf(events.CodeBadRequest, "%s %q is not a non-negative integer", events.HeaderHop, hop)
		}
		p.cause.Hop = v
	}
	return nil
}

func (n *Node) enqueue(p *pending) {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	if n.closed {
		p.req.Respond(marshalReply(nil, events.Errorf(events.CodeUnavailable, "store node is stopping")))
		return
	}
	n.inFlight.Add(1)
	n.queue <- p
}
