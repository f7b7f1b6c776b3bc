package storenode

import (
	"log/slog"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/datadir"
)

func TestSeqCheck(t *testing.T) {
	cases := []struct {
		name             string
		seen             []uint64
		streamLast, mark uint64
		want             []events.SeqRange
	}{
		{name: "empty stream, no mark"},
		{name: "dense", seen: []uint64{1, 2, 3}, streamLast: 3, mark: 3},
		{name: "mark lags", seen: []uint64{1, 2, 3}, streamLast: 3, mark: 2},
		{name: "first sequences missing", seen: []uint64{4, 5}, streamLast: 5, mark: 5, want: []events.SeqRange{rg(1, 3)}},
		{name: "holes", seen: []uint64{1, 3, 4, 8}, streamLast: 8, want: []events.SeqRange{rg(2, 2), rg(5, 7)}},
		{name: "tail lost, last sequence kept", seen: []uint64{1, 2}, streamLast: 5, want: []events.SeqRange{rg(3, 5)}},
		{name: "stream ends before the mark", seen: []uint64{1, 2}, streamLast: 2, mark: 9, want: []events.SeqRange{rg(3, 9)}},
		{name: "every message lost", streamLast: 4, mark: 6, want: []events.SeqRange{rg(1, 6)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newSeqCheck()
			for _, s := range tc.seen {
				c.observe(s)
			}
			if got := c.end(tc.streamLast, tc.mark); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("missing %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSubtract(t *testing.T) {
	cases := []struct {
		name          string
		rs, cut, want []events.SeqRange
	}{
		{name: "nothing accepted", rs: []events.SeqRange{rg(2, 4)}, want: []events.SeqRange{rg(2, 4)}},
		{name: "accepted exactly", rs: []events.SeqRange{rg(2, 4), rg(9, 9)}, cut: []events.SeqRange{rg(2, 4), rg(9, 9)}},
		{name: "grown hole", rs: []events.SeqRange{rg(1, 10)}, cut: []events.SeqRange{rg(3, 4), rg(7, 7)}, want: []events.SeqRange{rg(1, 2), rg(5, 6), rg(8, 10)}},
		{name: "overlapping ends", rs: []events.SeqRange{rg(3, 8)}, cut: []events.SeqRange{rg(1, 4), rg(7, 12)}, want: []events.SeqRange{rg(5, 6)}},
		{name: "disjoint", rs: []events.SeqRange{rg(5, 6)}, cut: []events.SeqRange{rg(1, 2), rg(8, 9)}, want: []events.SeqRange{rg(5, 6)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := subtract(tc.rs, tc.cut); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("subtract(%v, %v) = %v, want %v", tc.rs, tc.cut, got, tc.want)
			}
		})
	}
}

func rg(first, last uint64) events.SeqRange { return events.SeqRange{First: first, Last: last} }

// A halt rebuild that accepts a lost tail moves the mark back to the
// stream's end; the mark writer must not then write the sequence it read
// before the rebuild (past the lost tail) back: the next start would
// report the same loss again.
func TestMarkNotWrittenBackAfterAcceptedTailLoss(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.dataDir, cfg.acceptDataLoss, cfg.logger = dir, true, slog.New(slog.DiscardHandler)
	g, err := newLossGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: cfg, log: cfg.logger, loss: g}
	written := func() uint64 {
		t.Helper()
		m, err := datadir.ReadMark(dir, cfg.stream)
		if err != nil {
			t.Fatal(err)
		}
		return m.LastSeq
	}
	n.lastSeq.Store(100)
	n.writeMark()
	if got := written(); got != 100 {
		t.Fatalf("mark %d, want 100", got)
	}

	// An append fails: the node is stale while it rebuilds, and the
	// rebuild finds the stream ending at 90 and accepts the loss.
	n.stale.Store(true)
	before := g.generation() // a mark writer that read the generation just before
	if err := g.judge(&DataLossError{Stream: cfg.stream, Mark: 100, Missing: []events.SeqRange{rg(91, 100)}}, 90, cfg.logger); err != nil {
		t.Fatal(err)
	}
	n.writeMark() // a tick during the rebuild
	if err := g.advance(n.lastSeq.Load(), before); err != nil {
		t.Fatal(err)
	}
	if got := written(); got != 90 {
		t.Fatalf("mark %d after the accepted loss, want 90 (the stream's end)", got)
	}

	// The rebuild ends: lastSeq is the stream's, then new appends move it.
	n.lastSeq.Store(90)
	n.stale.Store(false)
	n.lastSeq.Store(93)
	n.writeMark()
	if got := written(); got != 93 {
		t.Fatalf("mark %d after new appends, want 93", got)
	}
}
