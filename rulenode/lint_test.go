package rulenode

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestLintSeedRulesHaveNoCycle(t *testing.T) {
	var sets []*RuleSet
	for _, f := range []string{exampleRules("loyalty"), "testdata/user-stats.yaml", exampleRules("ecommerce"), "testdata/archive-on-delete.yaml"} {
		sets = append(sets, loadRules(t, f))
	}
	if cycles := Lint(sets...); len(cycles) != 0 {
		t.Fatalf("cycles: %v", cycles)
	}
}

func TestLintReorderSelfLoop(t *testing.T) {
	// The reorder rule writes the inventory it reads; only its when guard
	// (alreadyFlagged) stops it, which Lint cannot see, so it is reported.
	got := Lint(loadTestdata(t, "reorder.yaml"))
	want := "reorder/reorder-on-low-stock -[bucket.inventory.updated]-> reorder/reorder-on-low-stock"
	if len(got) != 1 || got[0].String() != want || got[0].Guarded() {
		t.Fatalf("got %v", got)
	}
}

func TestLintCycles(t *testing.T) {
	goSet, err := NewRuleSet("go", &Rule{
		ID: "notify", On: []string{"bucket.things.updated"}, Writes: []string{"bucket.pings.*"},
		Handler: func(context.Context, *events.Event, *Env) error { return nil },
	}, &Rule{
		ID: "silent", On: []string{"bucket.things.updated"},
		Handler: func(context.Context, *events.Event, *Env) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	// silent declares no writes, so it is assumed to cause no events.
	back, err := Load(strings.NewReader(`
name: back
rules:
  - id: relay
    on: [bucket.pings.updated]
    then:
      - upsert: { bucket: things, key: "${event.key}", record: { seen: true } }
`), "back.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sets    []*RuleSet
		want    []string
		guarded []bool
	}{
		{
			name: "cyclic file",
			sets: []*RuleSet{loadTestdata(t, "cyclic.yaml")},
			want: []string{
				"loops/ping -[bucket.pongs.updated]-> loops/pong -[bucket.pings.updated]-> loops/ping",
				"loops/touch -[bucket.things.updated]-> loops/touch",
				"loops/audit (noLoop) -[bucket.audit.inserted]-> loops/audit",
			},
			guarded: []bool{false, false, true},
		},
		{
			name: "across sets, through a Go rule's declared writes",
			sets: []*RuleSet{goSet, back},
			want: []string{
				"go/notify -[bucket.pings.*]-> back/relay -[bucket.things.updated]-> go/notify",
			},
			guarded: []bool{false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cycles := Lint(tc.sets...)
			var got []string
			var guarded []bool
			for _, c := range cycles {
				got = append(got, c.String())
				guarded = append(guarded, c.Guarded())
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(guarded, tc.guarded) {
				t.Fatalf("got\n%s\n%v\nwant\n%s\n%v", strings.Join(got, "\n"), guarded, strings.Join(tc.want, "\n"), tc.guarded)
			}
		})
	}
}

func TestLintDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	var sets []*RuleSet
	for _, f := range files {
		sets = append(sets, loadTestdata(t, filepath.Base(f)))
	}
	first := Lint(sets...)
	for i := 0; i < 5; i++ {
		if again := Lint(sets...); !slices.EqualFunc(first, again, func(a, b Cycle) bool { return a.String() == b.String() }) {
			t.Fatalf("run %d differs: %v vs %v", i, again, first)
		}
	}
}

func TestLintLargeAcyclicGraphIsFast(t *testing.T) {
	// A layered graph with 2^30 paths and no cycle: the search must not
	// walk the paths.
	var b strings.Builder
	b.WriteString("name: layers\nrules:\n")
	for layer := 0; layer < 30; layer++ {
		for k := 0; k < 2; k++ {
			fmt.Fprintf(&b, "  - id: r%d-%d\n    on: [bucket.l%d.inserted]\n    then:\n      - insert: { bucket: l%d, record: {} }\n", layer, k, layer, layer+1)
		}
	}
	rs, err := Load(strings.NewReader(b.String()), "layers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cycles := Lint(rs); len(cycles) != 0 {
		t.Fatalf("cycles: %v", cycles)
	}
}
