package rulenode_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/rulenode"
)

// versionedRules is a rule set that records every order it handles in
// handled, keyed by the event's stream sequence, with the version whose
// rules did it: a second handling of an event is an insert conflict, a
// missed event a missing record.
func versionedRules(version int) string {
	return fmt.Sprintf(`name: versioned
rules:
  - id: record-order
    on: [bucket.orders.inserted]
    then:
      - insert:
          bucket: handled
          record: { seq: "${event.meta.seq}", orderId: "${event.record.id}", version: %d }
`, version)
}

var versionedBuckets = []events.BucketDef{
	{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber, Generated: events.GenAutoincrement}}},
	{Bucket: "handled", Key: "seq", Schema: map[string]events.FieldDef{
		"seq":     {Type: events.TypeNumber, Required: true},
		"orderId": {Type: events.TypeNumber, Required: true},
		"version": {Type: events.TypeNumber, Required: true}}},
}

// storeloopCLI runs the storeloop binary against url and returns its
// output and exit code.
func storeloopCLI(t *testing.T, url string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, procs.Build(t, "storeloop"), append([]string{"--nats", url}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("storeloop %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// TestDeployUnderLoad runs 2 rulenode processes on a deployed rule set
// while orders are inserted steadily, deploys version 2 and then rolls
// back to version 1 (as version 3), and checks that every order event was
// handled exactly once, by the version whose range holds its sequence —
// the one sequence each version records — with no command id twice.
// Deploying an invalid file is refused and leaves the history as it was.
func TestDeployUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	store := procs.StartStorenode(t, procs.StorenodeSpec(t, t.TempDir(), "127.0.0.1:0"))
	cl, err := client.Connect(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, def := range versionedBuckets {
		if err := cl.Define(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	file := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1, v2 := file("v1.yaml", versionedRules(1)), file("v2.yaml", versionedRules(2))
	bad := file("bad.yaml", strings.Replace(versionedRules(3), "insert:", "insrt:", 1))

	if out, code := storeloopCLI(t, store.URL, "rules", "deploy", v1); code != 0 || !strings.HasPrefix(out, "versioned version 1 deployed") {
		t.Fatalf("deploy v1: exit %d\n%s", code, out)
	}
	var nodes []*procs.Rulenode
	for i := range 2 {
		nodes = append(nodes, procs.StartRulenode(t, procs.Spec{Name: fmt.Sprintf("rulenode-%d", i), Bin: procs.Build(t, "rulenode"),
			Args: []string{"--ruleset", "versioned", "--nats", store.URL, "--health", "127.0.0.1:0", "--log-level", "info"}}))
	}

	// The load: one order at a time, until stopped.
	var inserted sync.WaitGroup
	stop := make(chan struct{})
	count := make(chan int, 1)
	inserted.Go(func() {
		n := 0
		defer func() { count <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cl.Bucket("orders").Insert(ctx, events.Record{}); err != nil {
				t.Errorf("insert: %v", err)
				return
			}
			n++
		}
	})
	handledAtLeast := func(n int) {
		t.Helper()
		for {
			c, err := cl.Bucket("handled").Count(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c >= n {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("only %d orders handled, waiting for %d", c, n)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	handledAtLeast(30)
	if out, code := storeloopCLI(t, store.URL, "rules", "deploy", v2); code != 0 || !strings.HasPrefix(out, "versioned version 2 deployed") {
		t.Fatalf("deploy v2: exit %d\n%s", code, out)
	}
	histBefore, _ := storeloopCLI(t, store.URL, "rules", "history", "versioned")
	if out, code := storeloopCLI(t, store.URL, "rules", "deploy", bad); code != 2 {
		t.Errorf("deploy of an invalid file: exit %d, want 2\n%s", code, out)
	}
	if hist, _ := storeloopCLI(t, store.URL, "rules", "history", "versioned"); hist != histBefore {
		t.Errorf("history after a refused deploy:\n%s\nwant as before:\n%s", hist, histBefore)
	}
	handledAtLeast(80)
	if out, code := storeloopCLI(t, store.URL, "rules", "rollback", "versioned", "1"); code != 0 || !strings.HasPrefix(out, "versioned version 3 deployed (rules of version 1") {
		t.Fatalf("rollback: exit %d\n%s", code, out)
	}
	handledAtLeast(130)
	close(stop)
	inserted.Wait()
	orders := <-count
	if err := cl.Settle(ctx, client.SettleRuleSets("versioned")); err != nil {
		t.Fatal(err)
	}

	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := rulenode.OpenRegistry(ctx, js, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := reg.History(ctx, "versioned")
	if err != nil || len(hist) != 3 {
		t.Fatalf("history = %d versions, %v; want 3", len(hist), err)
	}
	froms := []uint64{hist[0].From, hist[1].From, hist[2].From}
	if !(froms[0] < froms[1] && froms[1] < froms[2]) {
		t.Fatalf("switch sequences %v, want increasing", froms)
	}
	// The rules of the version covering seq write this version number.
	wantVersion := func(seq uint64) float64 {
		switch {
		case seq >= froms[2]:
			return 1 // the rollback runs version 1's rules
		case seq >= froms[1]:
			return 2
		}
		return 1
	}

	// Every order event, from the stream, against what was recorded.
	orderSeqs := map[uint64]float64{} // seq → order id
	commandIDs := map[string]uint64{}
	err = cl.History(ctx, "", func(ev *events.Event, _ nats.Header) error {
		if ev.Bucket == "orders" {
			orderSeqs[ev.Meta.Seq] = ev.Record["id"].(float64)
		}
		if id := ev.Meta.CommandID; ev.Meta.RuleID != "" {
			if prev, dup := commandIDs[id]; dup {
				t.Errorf("command id %s wrote events %d and %d", id, prev, ev.Meta.Seq)
			}
			commandIDs[id] = ev.Meta.Seq
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(orderSeqs) != orders {
		t.Fatalf("%d order events in the stream, %d inserted", len(orderSeqs), orders)
	}
	handled, err := cl.Bucket("handled").Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(handled) != orders || len(commandIDs) != orders {
		t.Errorf("%d orders, %d handled, %d rule writes: want each order handled once", orders, len(handled), len(commandIDs))
	}
	perVersion := map[float64]int{}
	for _, h := range handled {
		seq := uint64(h["seq"].(float64))
		id, ok := orderSeqs[seq]
		switch {
		case !ok:
			t.Errorf("handled %v: no order event at seq %d", h, seq)
		case h["orderId"] != id:
			t.Errorf("handled %v: the event at seq %d is order %v", h, seq, id)
		case h["version"] != wantVersion(seq):
			t.Errorf("event %d handled by rules writing version %v, want %v (switches at %v)", seq, h["version"], wantVersion(seq), froms)
		}
		perVersion[h["version"].(float64)]++
	}
	if perVersion[2] == 0 || perVersion[1] == 0 {
		t.Errorf("handled per version %v: want both versions to have handled events", perVersion)
	}
	t.Logf("%d orders; switches at %v; handled per rules version %v", orders, froms, perVersion)

	// Both processes learnt each version.
	for i, n := range nodes {
		if got := len(n.Lines(true, "rule-set version deployed")); got != 2 {
			t.Errorf("rulenode-%d logged %d new versions, want 2:\n%s", i, got, n.Output())
		}
	}

	out, code := storeloopCLI(t, store.URL, "rules", "history", "versioned")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("rules history: exit %d\n%s", code, out)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 5 || f[0] != strconv.Itoa(i+1) || f[1] != hist[i].Hash[:12] || f[2] != strconv.FormatUint(froms[i], 10) {
			t.Errorf("history line %d = %q, want version %d, hash %s, from %d", i+1, l, i+1, hist[i].Hash[:12], froms[i])
		}
	}
	if hist[2].Hash != hist[0].Hash || hist[2].RollbackOf != 1 {
		t.Errorf("version 3 = hash %s, rollback of %d; want version 1's hash %s, rollback of 1", hist[2].Hash, hist[2].RollbackOf, hist[0].Hash)
	}
	out, code = storeloopCLI(t, store.URL, "rules", "ls")
	want := fmt.Sprintf("versioned  ok      3        %s  %d", hist[2].Hash[:12], froms[2])
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("rules ls: exit %d\n%s\nwant a line starting %q", code, out, want)
	}
}
