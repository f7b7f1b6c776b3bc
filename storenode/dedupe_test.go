package storenode

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
)

func TestDedupeTableBounds(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	reply := []byte(strings.Repeat("r", 1000))
	per := entryBytes("id-00", reply)
	tests := []struct {
		name       string
		window     time.Duration
		size, max  int
		puts       int
		step       time.Duration
		wantOldest int // the first id still remembered
	}{
		{"bytes", time.Hour, 100, 3 * per, 10, 0, 7},
		{"count", time.Hour, 4, 1 << 30, 10, 0, 6},
		{"window", 5 * time.Second, 100, 1 << 30, 10, time.Second, 4},
		{"the newest stays past the budget", time.Hour, 100, per / 2, 3, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDedupeTable(tc.window, tc.size, tc.max)
			for i := range tc.puts {
				d.put(fmt.Sprintf("id-%02d", i), reply, t0.Add(time.Duration(i)*tc.step))
			}
			for i := range tc.puts {
				_, ok := d.get(fmt.Sprintf("id-%02d", i))
				if want := i >= tc.wantOldest; ok != want {
					t.Fatalf("id-%02d remembered %v, want %v", i, ok, want)
				}
			}
			if want := (tc.puts - tc.wantOldest) * per; d.bytes != want {
				t.Fatalf("bytes = %d, want %d", d.bytes, want)
			}
		})
	}
}

// An id put again is renewed: it goes last in the eviction order, and its
// old slot does not evict it.
func TestDedupeTablePutAgain(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	d := newDedupeTable(time.Hour, 2, 1<<30)
	d.put("a", []byte("1"), t0)
	d.put("b", []byte("2"), t0)
	d.put("a", []byte("3"), t0)
	d.put("c", []byte("4"), t0)
	if r, ok := d.get("a"); !ok || string(r) != "3" {
		t.Fatalf("a = %q, %v; want the renewed reply", r, ok)
	}
	if _, ok := d.get("b"); ok {
		t.Fatal("b is remembered, want it evicted as the oldest")
	}
	if want := entryBytes("a", []byte("3")) + entryBytes("c", []byte("4")); d.bytes != want {
		t.Fatalf("bytes = %d, want %d", d.bytes, want)
	}
}

// Issue 9 case 4: replay kept every command's result for the whole stream
// before it applied the window: 2,000 upserts of one 100 KB record left
// the node at 530 MB after a restart. Replay now puts each reply in the
// table as it reads, within the byte budget.
func TestReplayRepliesStayWithinTheBudget(t *testing.T) {
	const budget = 4 << 20
	now := time.Now()
	d := newDedupeTable(time.Hour, 1<<20, budget)
	rr := newReplayReplies(d, now)
	st := projections.NewState()
	blob := strings.Repeat("x", 100<<10)
	peak := 0
	for i := 1; i <= 2000; i++ {
		rec := func(v int) events.Record {
			return events.Record{"id": 1.0, "blob": blob, events.FieldVersion: float64(v)}
		}
		ev := &events.Event{Type: events.OpUpdated, Bucket: "big", Key: 1.0, OldRecord: rec(i), NewRecord: rec(i + 1),
			Meta: events.Meta{EventID: fmt.Sprint(i), Time: now.UnixMilli(), CommandID: fmt.Sprintf("cmd-%d", i)}}
		if err := rr.observe(nats.Header{}, projections.Message{Event: ev}, nil, st); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, d.bytes)
	}
	if peak > budget+entryBytes("cmd-2000", make([]byte, 101<<10)) {
		t.Fatalf("the table reached %d bytes, budget %d", peak, budget)
	}
	if _, ok := d.get("cmd-2000"); !ok {
		t.Fatal("the newest command is not remembered")
	}
	if _, ok := d.get("cmd-1"); ok {
		t.Fatal("the oldest command is remembered past the budget")
	}
	if len(rr.txs) != 0 {
		t.Fatalf("%d transactions kept aside", len(rr.txs))
	}
}

// A transaction cut short by accepted loss stays apart from the retry of
// its command: the remembered reply is the retry's alone.
func TestReplayRepliesKeepACutTxApart(t *testing.T) {
	now := time.Now()
	d := newDedupeTable(time.Hour, 100, 1<<20)
	rr := newReplayReplies(d, now)
	st := projections.NewState()
	ins := func(tx string, size int, id float64) {
		ev := &events.Event{Type: events.OpInserted, Bucket: "b", Key: id, NewRecord: events.Record{"id": id},
			Meta: events.Meta{EventID: fmt.Sprint(tx, id), Time: now.UnixMilli(), CommandID: "cmd", TxID: tx, TxSize: size}}
		if err := rr.observe(nats.Header{}, projections.Message{Event: ev}, nil, st); err != nil {
			t.Fatal(err)
		}
	}
	ins("cut", 2, 1) // its second event was lost
	ins("retry", 1, 2)
	reply, ok := d.get("cmd")
	if !ok {
		t.Fatal("the retry's reply is not remembered")
	}
	var got struct {
		Result events.TxResult `json:"result"`
	}
	if err := json.Unmarshal(reply, &got); err != nil || len(got.Result.Results) != 1 {
		t.Fatalf("reply %s (%v), want the retry's single result", reply, err)
	}
}

// TestTxResultJSON: a transaction's rebuilt reply is byte for byte what
// encoding/json writes for events.TxResult.
func TestTxResultJSON(t *testing.T) {
	for _, results := range [][]any{
		nil,
		{},
		{events.Record{"id": 1.0, "s": "<a&b>", "nested": map[string]any{"x": []any{1.5, nil}}}, events.DeleteResult{Deleted: true}, nil, events.DeleteResult{}},
	} {
		want := marshalReply(events.TxResult{Results: results}, nil)
		if got := marshalReply(txResultJSON(results), nil); string(got) != string(want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
}
