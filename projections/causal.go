package projections

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/storeloop/storeloop/events"
)

// CausalNode is one event in a cascade, with the events its rules wrote.
type CausalNode struct {
	Subject  string
	Event    *events.Event
	TraceID  string // from the event's traceparent header, when it had one
	Children []*CausalNode
}

// Cascade is every event of one causal chain (one correlation id), as trees
// rooted at the events written from outside.
type Cascade struct {
	CorrelationID string
	Roots         []*CausalNode
	Size          int
}

// CausalEvent is an event with what the stream knows of it besides its body.
type CausalEvent struct {
	Subject     string
	Event       *events.Event
	TraceParent string
}

// Cascades groups events by correlation id and links each event to the one
// that caused it (meta.causationId is the triggering event's id for a rule's
// write). Cascades are ordered by their first event's stream position.
func Cascades(evs []CausalEvent) []*Cascade {
	byID := map[string]*CausalNode{}
	var order []*CausalNode
	for _, ce := range evs {
		n := &CausalNode{Subject: ce.Subject, Event: ce.Event, TraceID: traceID(ce.TraceParent)}
		byID[ce.Event.Meta.EventID] = n
		order = append(order, n)
	}
	byCorr := map[string]*Cascade{}
	var out []*Cascade
	for _, n := range order {
		m := n.Event.Meta
		c := byCorr[m.CorrelationID]
		if c == nil {
			c = &Cascade{CorrelationID: m.CorrelationID}
			byCorr[m.CorrelationID] = c
			out = append(out, c)
		}
		c.Size++
		if parent := byID[m.CausationID]; parent != nil && parent != n && m.Hop > 0 {
			parent.Children = append(parent.Children, n)
		} else {
			c.Roots = append(c.Roots, n)
		}
	}
	return out
}

// traceID extracts the trace id of a W3C traceparent ("00-<trace>-<span>-<flags>").
func traceID(tp string) string {
	parts := strings.Split(tp, "-")
	if len(parts) == 4 && len(parts[1]) == 32 {
		return parts[1]
	}
	return ""
}

// Print writes the cascade as a header line and an indented tree, one event
// a line:
//
//	cascade 3fX… (2 events)
//	└─ bucket.orders.updated key=1 hop=0 seq=7 at=12:00:00.000
//	   └─ [loyalty-on-ship] bucket.loyalty.inserted key=alice hop=1 seq=8 at=12:00:00.004
func (c *Cascade) Print(w io.Writer) {
	fmt.Fprintf(w, "cascade %s (%d events)\n", c.CorrelationID, c.Size)
	for i, r := range c.Roots {
		r.print(w, "", i == len(c.Roots)-1)
	}
}

func (n *CausalNode) print(w io.Writer, indent string, last bool) {
	branch, next := "├─ ", "│  "
	if last {
		branch, next = "└─ ", "   "
	}
	m := n.Event.Meta
	rule := ""
	if m.RuleID != "" {
		rule = "[" + m.RuleID + "] "
	}
	line := fmt.Sprintf("%s%s%s%s key=%v hop=%d", indent, branch, rule, n.Subject, n.Event.Key, m.Hop)
	if m.Seq > 0 {
		line += fmt.Sprintf(" seq=%d", m.Seq)
	}
	line += " at=" + time.UnixMilli(m.Time).UTC().Format("15:04:05.000")
	if m.TxID != "" {
		line += " tx=" + m.TxID[:min(8, len(m.TxID))] // a prefix is enough to tell transactions apart
	}
	if n.TraceID != "" {
		line += " trace=" + n.TraceID
	}
	fmt.Fprintln(w, line)
	sort.SliceStable(n.Children, func(i, j int) bool { return n.Children[i].Event.Meta.Seq < n.Children[j].Event.Meta.Seq })
	for i, c := range n.Children {
		c.print(w, indent+next, i == len(n.Children)-1)
	}
}

// TraceIDs returns the distinct trace ids the cascade's events carried, in
// the order a depth-first walk from the roots meets them.
func (c *Cascade) TraceIDs() []string {
	var ids []string
	seen := map[string]bool{}
	var walk func(n *CausalNode)
	walk = func(n *CausalNode) {
		if n.TraceID != "" && !seen[n.TraceID] {
			seen[n.TraceID] = true
			ids = append(ids, n.TraceID)
		}
		for _, k := range n.Children {
			walk(k)
		}
	}
	for _, r := range c.Roots {
		walk(r)
	}
	return ids
}
