package storenode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/datadir"
	"github.com/storeloop/storeloop/tracing"
)

// MarkInterval is how often the node writes its high-water mark when it
// has acknowledged something new: the mark lags the newest acknowledgement
// by at most this plus one write (a temp file, two fsyncs). Loss in the
// stream's tail within that lag is not detectable by the mark; holes inside
// the stream always are (the stream denies deletes, so sequences are dense).
const MarkInterval = 200 * time.Millisecond

// DataLossError is returned by Start when the stream lacks events the
// node's data says it held: a hole inside the stream, a stream that ends
// before the high-water mark, or a stream that is gone. Start with
// WithAcceptDataLoss to serve what is left.
type DataLossError struct {
	Stream  string
	Mark    uint64            // the high-water mark (0: none kept)
	Missing []events.SeqRange // in order
	Gone    bool              // the stream itself does not exist
}

func (e *DataLossError) Error() string {
	var b strings.Builder
	if e.Gone {
		fmt.Fprintf(&b, "stream %s is missing but this node acknowledged events up to sequence %d (high-water mark)", e.Stream, e.Mark)
	} else {
		fmt.Fprintf(&b, "stream %s lost %d acknowledged events: missing sequences ", e.Stream, lostCount(e.Missing))
		for i, r := range e.Missing {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d-%d", r.First, r.Last)
		}
		if e.Mark > 0 {
			fmt.Fprintf(&b, " (high-water mark %d)", e.Mark)
		}
	}
	b.WriteString("; refusing to serve: restore the data, or start with --accept-data-loss to serve what is left")
	return b.String()
}

func lostCount(rs []events.SeqRange) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Last - r.First + 1
	}
	return n
}

// seqCheck follows the sequences a replay delivers and records every one
// skipped: the stream denies deletes and purges, so any missing sequence
// is an event lost.
type seqCheck struct {
	next    uint64 // the sequence expected next
	missing []events.SeqRange
}

func newSeqCheck() *seqCheck { return &seqCheck{next: 1} }

func (c *seqCheck) observe(seq uint64) {
	if seq > c.next {
		c.missing = append(c.missing, events.SeqRange{First: c.next, Last: seq - 1})
	}
	c.next = max(c.next, seq+1)
}

// end adds what is missing after the last sequence delivered: up to the
// stream's last sequence (a lost tail whose sequence the stream kept) and
// up to the high-water mark (a stream cut short).
func (c *seqCheck) end(streamLast, mark uint64) []events.SeqRange {
	if last := max(streamLast, mark); last >= c.next {
		c.missing = append(c.missing, events.SeqRange{First: c.next, Last: last})
	}
	return c.missing
}

// subtract returns the parts of rs not covered by cut; both are sorted.
func subtract(rs, cut []events.SeqRange) []events.SeqRange {
	var out []events.SeqRange
	for _, r := range rs {
		for _, c := range cut {
			if c.Last < r.First || c.First > r.Last {
				continue
			}
			if c.First > r.First {
				out = append(out, events.SeqRange{First: r.First, Last: c.First - 1})
			}
			if c.Last >= r.Last {
				r.First = r.Last + 1
				break
			}
			r.First = c.Last + 1
		}
		if r.First <= r.Last {
			out = append(out, r)
		}
	}
	return out
}

// lossGuard is what the node knows of lost events: the durable
// high-water mark (with a data directory), the holes accepted as lost, and
// the loss to report. Its methods are safe from any goroutine.
type lossGuard struct {
	dir     string // "" without a data directory: no mark is kept
	accept  bool
	counter metric.Int64Counter

	mu       sync.Mutex
	mark     datadir.Mark      // as last written; Lost holds the accepted holes
	reported []events.SeqRange // for status: the accepted holes and this run's loss
	judged   uint64            // judgements of accepted loss so far: a sequence read before one may be past the stream's new end
}

func newLossGuard(cfg config) (*lossGuard, error) {
	g := &lossGuard{dir: cfg.dataDir, accept: cfg.acceptDataLoss, mark: datadir.Mark{Stream: cfg.stream}}
	var err error
	if g.dir != "" {
		if g.mark, err = datadir.ReadMark(g.dir, cfg.stream); err != nil {
			return nil, fmt.Errorf("storenode: %w", err)
		}
	}
	g.reported = slices.Clone(g.mark.Lost)
	g.counter, err = otel.Meter(tracing.InstrumentationName).Int64Counter("storeloop.events.lost",
		metric.WithDescription("Acknowledged events found missing from the stream and accepted with --accept-data-loss."),
		metric.WithUnit("{event}"))
	if err != nil {
		return nil, fmt.Errorf("storenode: metrics: %w", err)
	}
	return g, nil
}

func (g *lossGuard) current() datadir.Mark {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mark
}

// lost returns the events reported lost, for status.
func (g *lossGuard) lost() []events.SeqRange {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reported)
}

// generation returns the number of judgements of accepted loss so far,
// for advance.
func (g *lossGuard) generation() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.judged
}

// advance writes seq as the mark if it is past the one written, and no
// loss was judged since generation gen: seq was then read before the
// judgement moved the mark back to the stream's end, and may be a sequence
// lost with the tail.
func (g *lossGuard) advance(seq, gen uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dir == "" || seq <= g.mark.LastSeq || gen != g.judged {
		return nil
	}
	m := g.mark
	m.LastSeq = seq
	return g.writeLocked(m)
}

func (g *lossGuard) writeLocked(m datadir.Mark) error {
	if g.dir != "" {
		if err := datadir.WriteMark(g.dir, m); err != nil {
			return fmt.Errorf("storenode: high-water mark: %w", err)
		}
	}
	g.mark = m
	return nil
}

// judge returns loss, or when accepting logs and counts it, moves the mark
// to the stream as it is (streamLast) and returns nil. Holes below the
// stream's end stay holes and are remembered as accepted; a cut tail is
// written again by the next appends; a stream that is gone starts over.
func (g *lossGuard) judge(loss *DataLossError, streamLast uint64, log *slog.Logger) error {
	if !g.accept {
		return loss
	}
	log.Error("data loss accepted (--accept-data-loss): serving what is left", "err", loss.Error())
	g.counter.Add(context.Background(), int64(lostCount(loss.Missing)))
	g.mu.Lock()
	defer g.mu.Unlock()
	g.judged++
	if loss.Gone {
		g.reported = nil // the holes of the old stream went with it
	}
	g.reported = append(g.reported, loss.Missing...)
	m := datadir.Mark{Stream: g.mark.Stream, LastSeq: streamLast}
	if !loss.Gone {
		for _, r := range append(slices.Clone(g.mark.Lost), loss.Missing...) {
			if r.First <= streamLast {
				r.Last = min(r.Last, streamLast)
				m.Lost = append(m.Lost, r)
			}
		}
		slices.SortFunc(m.Lost, func(a, b events.SeqRange) int { return cmp.Compare(a.First, b.First) })
	}
	return g.writeLocked(m)
}

// checkStreamExists runs before the node binds the stream: a stream that
// is gone while the mark says it held events is loss, not a fresh start;
// a sealed stream can never take the node's appends again.
func (n *Node) checkStreamExists(ctx context.Context) error {
	s, err := n.js.Stream(ctx, n.cfg.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		mark := n.loss.current()
		if mark.LastSeq == 0 {
			return nil
		}
		return n.loss.judge(&DataLossError{Stream: n.cfg.stream, Mark: mark.LastSeq, Gone: true,
			Missing: []events.SeqRange{{First: 1, Last: mark.LastSeq}}}, 0, n.log)
	case err != nil:
		return fmt.Errorf("storenode: stream %s: %w", n.cfg.stream, err)
	case s.CachedInfo().Config.Sealed:
		return fmt.Errorf("storenode: stream %s is sealed (set from outside the store node): it takes no appends and NATS cannot unseal it; "+
			"restore the stream from a backup taken before the seal, or copy its messages into a new stream", n.cfg.stream)
	}
	return nil
}

// checkSeqs judges what a replay found missing, against the mark and the
// holes already accepted; it runs at the end of every rebuild.
func (n *Node) checkSeqs(c *seqCheck, streamLast uint64) error {
	mark := n.loss.current()
	missing := subtract(c.end(streamLast, mark.LastSeq), mark.Lost)
	if len(missing) == 0 {
		return nil
	}
	return n.loss.judge(&DataLossError{Stream: n.cfg.stream, Mark: mark.LastSeq, Missing: missing}, streamLast, n.log)
}

// keepMark writes the high-water mark every MarkInterval while it moves,
// until the node stops (Stop writes the last one).
func (n *Node) keepMark() {
	t := time.NewTicker(MarkInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.writeMark()
		case <-n.done:
			return
		}
	}
}

// writeMark writes the last acknowledged sequence as the mark. Not while
// the state is being rebuilt (stale): lastSeq is then the sequence before
// the rebuild, possibly past a tail the rebuild accepted as lost. The
// rebuild stores the new lastSeq before it clears stale, and a judgement
// between the two loads below is caught by the generation.
func (n *Node) writeMark() {
	gen := n.loss.generation()
	if n.stale.Load() {
		return
	}
	if err := n.loss.advance(n.lastSeq.Load(), gen); err != nil {
		n.log.Error("high-water mark not written", "err", err)
	}
}
