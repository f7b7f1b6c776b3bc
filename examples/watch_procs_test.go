package examples_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
)

// The paid orders of 100 or more, as `storeloop watch` is given them and
// as the test decides them itself.
const watchWhere = `{"status":"paid","total":{"$gte":100}}`

func paidLarge(r events.Record) bool {
	return r != nil && r["status"] == "paid" && r["total"].(float64) >= 100
}

// A reactive query on real processes: the storeloop CLI's `watch orders
// --where …` against a storenode process while four writers insert,
// update and delete orders, moving them into and out of the result set.
// The watch is SIGKILLed mid-stream and started again with --from-seq,
// the last seq it printed, while the writers go on. The snapshot is the
// set at the ready line's seq S; the lines of both runs after ready are
// exactly the changes the stream's order events after S make to the set,
// in stream order, each once; the set folded from all the lines equals a
// fresh query.
func TestWatchKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	d := startDaemons(ctx, t, "userstats", "", 0)
	orders := d.cl.Bucket("orders")
	cli := procs.Build(t, "storeloop")
	watch := func(extra ...string) *procs.Proc {
		args := append([]string{"--nats", d.url, "watch", "orders", "--where", watchWhere}, extra...)
		return procs.Start(t, procs.Spec{Name: "watch", Bin: cli, Args: args})
	}

	wr := &watchWriters{orders: orders, stop: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- wr.run(ctx, 4) }()
	stopWriters := func() {
		close(wr.stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// The snapshot is taken under the writes, of a set with members.
	waitUntil(ctx, t, "100 writes before the watch", func() bool { return wr.ops.Load() >= 100 })
	first := watch()
	first.WaitLine(t, false, `"type":"ready"`, procs.StartTimeout)
	waitUntil(ctx, t, "the first watch to print 30 changes", func() bool { return changesPrinted(first) >= 30 })
	first.Kill(t)
	lines := watchLines(t, first)
	resume := lines[len(lines)-1].Seq
	// Changes the restarted watch must catch up on.
	gap := wr.ops.Load() + 50
	waitUntil(ctx, t, "50 writes with no watch running", func() bool { return wr.ops.Load() >= gap })
	second := watch("--from-seq", fmt.Sprint(resume))
	waitUntil(ctx, t, "the second watch to print 30 changes", func() bool { return changesPrinted(second) >= 30 })
	stopWriters()
	// A last order that enters the set: once the watch prints it, it
	// has printed every change before it (stream order).
	if _, err := orders.Insert(ctx, events.Record{"userId": "last", "total": 1000.0, "status": "paid"}); err != nil {
		t.Fatal(err)
	}
	second.WaitLine(t, false, `"userId":"last"`, 30*time.Second)
	second.Kill(t)
	more := watchLines(t, second)
	end := more[len(more)-1].Seq
	t.Logf("%d writes; first watch: %d lines to seq %d; second: %d lines to seq %d", wr.ops.Load(), len(lines), resume, len(more), end)

	ready := slices.IndexFunc(lines, func(l watchLine) bool { return l.Type == events.WatchReady })
	if ready < 0 {
		t.Fatalf("no ready line in %v", lines)
	}
	snapAt := lines[ready].Seq
	wantSnap, wantChanges := expectedWatch(ctx, t, d.cl, snapAt, end)
	set := map[string]string{}
	for _, l := range lines[:ready] {
		if l.Type != events.WatchSnapshot || l.Seq != snapAt {
			t.Fatalf("line %+v before ready, want snapshot lines at seq %d", l, snapAt)
		}
		set[l.Key] = l.Record
	}
	if !maps.Equal(set, wantSnap) {
		t.Fatalf("snapshot at seq %d:\n%v\nthe stream's set at that seq:\n%v", snapAt, set, wantSnap)
	}
	got := append(lines[ready+1:], more...)
	if !slices.Equal(got, wantChanges) {
		t.Fatalf("changes after seq %d:\n%s\nwant the stream's:\n%s", snapAt, dumpLines(got), dumpLines(wantChanges))
	}
	// The kill and the resume fell between changes, with changes on both
	// sides and all three kinds: else this proved little.
	kinds := map[string]bool{}
	for _, l := range got {
		kinds[l.Type] = true
	}
	if ready+1 == len(lines) || len(more) == 0 || len(kinds) != 3 {
		t.Fatalf("%d changes before the kill, %d after, kinds %v: want some on both sides, added, changed and removed",
			len(lines)-ready-1, len(more), kinds)
	}

	for _, l := range got {
		if l.Type == events.WatchRemoved {
			delete(set, l.Key)
		} else {
			set[l.Key] = l.Record
		}
	}
	var where events.Where
	if err := json.Unmarshal([]byte(watchWhere), &where); err != nil {
		t.Fatal(err)
	}
	fresh, err := orders.Where(ctx, where)
	if err != nil {
		t.Fatal(err)
	}
	query := map[string]string{}
	for _, r := range fresh {
		query[canonical(t, r["id"])] = canonical(t, r)
	}
	if !maps.Equal(set, query) {
		t.Fatalf("set folded from the lines:\n%v\na fresh query:\n%v", set, query)
	}
}

// watchWriters insert, update and delete orders of their own until
// stopped: inserts of paid and pending orders of any total, status and
// total changes that move orders into and out of the watched set, deletes.
type watchWriters struct {
	orders *client.Bucket
	stop   chan struct{}
	ops    atomic.Int64
}

func (w *watchWriters) run(ctx context.Context, workers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for k := range workers {
		wg.Go(func() {
			if err := w.write(ctx, k); err != nil {
				errs <- fmt.Errorf("writer %d: %w", k, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs)
}

func (w *watchWriters) write(ctx context.Context, k int) error {
	rng := rand.New(rand.NewPCG(uint64(k), 13))
	statuses := []string{"pending", "paid", "shipped"}
	var ids []any
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return nil
		default:
		}
		var err error
		switch i := rng.IntN(len(ids) + 1); {
		case n%5 < 2 || len(ids) == 0:
			var rec events.Record
			rec, err = w.orders.Insert(ctx, events.Record{"userId": fmt.Sprint("w", k), "total": float64(rng.IntN(200)), "status": statuses[rng.IntN(2)]})
			if err == nil {
				ids = append(ids, rec["id"])
			}
		case n%5 == 2:
			_, err = w.orders.Update(ctx, ids[i%len(ids)], events.Record{"status": statuses[rng.IntN(3)]})
		case n%5 == 3:
			_, err = w.orders.Update(ctx, ids[i%len(ids)], events.Record{"total": float64(rng.IntN(200))})
		default:
			_, err = w.orders.Delete(ctx, ids[i%len(ids)])
			ids = slices.Delete(ids, i%len(ids), i%len(ids)+1)
		}
		if err != nil {
			return err
		}
		w.ops.Add(1)
	}
}

// watchLine is a line of `storeloop watch` with its key and record as
// canonical JSON, comparable as a whole.
type watchLine struct {
	Type        string
	Key, Record string
	Seq         uint64
}

// changesPrinted counts the change lines p has printed so far.
func changesPrinted(p *procs.Proc) int {
	n := 0
	for _, typ := range []string{events.WatchAdded, events.WatchChanged, events.WatchRemoved} {
		n += len(p.Lines(false, `{"type":"`+typ+`"`))
	}
	return n
}

// watchLines parses the stdout of a watch process that has ended.
func watchLines(t *testing.T, p *procs.Proc) []watchLine {
	t.Helper()
	var out []watchLine
	for _, s := range p.Lines(false, "") {
		var ch struct {
			Type   string         `json:"type"`
			Key    any            `json:"key"`
			Record map[string]any `json:"record"`
			Seq    uint64         `json:"seq"`
		}
		if err := json.Unmarshal([]byte(s), &ch); err != nil {
			t.Fatalf("watch line %q: %v", s, err)
		}
		l := watchLine{Type: ch.Type, Seq: ch.Seq}
		if ch.Type != events.WatchReady {
			l.Key, l.Record = canonical(t, ch.Key), canonical(t, ch.Record)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		t.Fatalf("the watch printed nothing:\n%s", p.Output())
	}
	return out
}

// canonical is v as JSON with sorted object keys.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// expectedWatch reads the orders' events up to stream sequence end and
// returns what a watch of paidLarge whose snapshot is at snapAt must
// print: the set at snapAt (canonical key → record), then the change each
// later event makes to the set, if any.
func expectedWatch(ctx context.Context, t *testing.T, cl *client.Client, snapAt, end uint64) (map[string]string, []watchLine) {
	t.Helper()
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, events.DefaultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.EventSubjectPrefix + ".orders.>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer msgs.Stop()
	set := map[string]string{}
	var snap map[string]string
	var changes []watchLine
	for seq := uint64(0); seq < end; {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			t.Fatalf("reading the stream after seq %d (to %d): %v", seq, end, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seq = md.Sequence.Stream
		if snap == nil && seq > snapAt {
			snap = maps.Clone(set)
		}
		ev, err := events.DecodeEvent(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		var before, after events.Record
		switch ev.Type {
		case events.OpInserted:
			after = ev.Record
		case events.OpUpdated:
			before, after = ev.OldRecord, ev.NewRecord
		case events.OpDeleted:
			before = ev.Record
		}
		key := canonical(t, ev.Key)
		if paidLarge(after) {
			set[key] = canonical(t, after)
		} else {
			delete(set, key)
		}
		if seq <= snapAt {
			continue
		}
		l := watchLine{Key: key, Record: canonical(t, after), Seq: seq}
		switch was, is := paidLarge(before), paidLarge(after); {
		case was && is:
			l.Type = events.WatchChanged
		case is:
			l.Type = events.WatchAdded
		case was:
			l.Type = events.WatchRemoved
			if after == nil {
				l.Record = canonical(t, before)
			}
		default:
			continue
		}
		changes = append(changes, l)
	}
	if snap == nil {
		snap = set
	}
	return snap, changes
}

func dumpLines(ls []watchLine) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "  %d %s %s %s\n", l.Seq, l.Type, l.Key, l.Record)
	}
	return b.String()
}

// waitUntil polls ok until it holds, failing the test when ctx ends.
func waitUntil(ctx context.Context, t *testing.T, what string, ok func() bool) {
	t.Helper()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond): // polling interval, not synchronisation
		}
	}
}
