package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/storenode"
)

func TestShippedEffect(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantWrite string
		wantOK    bool
		wantErr   bool
	}{
		{"ships", `{"type":"updated","bucket":"orders","key":1,"oldRecord":{"status":"new"},"newRecord":{"userId":"u7","total":129,"status":"shipped"},"meta":{}}`, `{"userId":"u7","points":12}`, true, false},
		{"already shipped", `{"type":"updated","bucket":"orders","key":1,"oldRecord":{"status":"shipped"},"newRecord":{"userId":"u7","total":129,"status":"shipped"},"meta":{}}`, "", false, false},
		{"not shipped", `{"type":"updated","bucket":"orders","key":1,"oldRecord":{"status":"new"},"newRecord":{"userId":"u7","total":129,"status":"paid"},"meta":{}}`, "", false, false},
		{"not json", `{"type":`, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			write, ok, err := ShippedEffect([]byte(tt.body))
			if (err != nil) != tt.wantErr || ok != tt.wantOK || string(write) != tt.wantWrite {
				t.Fatalf("ShippedEffect = %s, %v, %v; want %s, %v, error %v", write, ok, err, tt.wantWrite, tt.wantOK, tt.wantErr)
			}
		})
	}
}

func TestWriteRulesTable(t *testing.T) {
	rows := []RuleRow{
		{Durability: "periodic", Fsync: "periodic", Loop: RawLoop.Name, Events: 1000, Elapsed: 100 * time.Millisecond, CPU: 90 * time.Millisecond, P50: time.Millisecond, P99: 2 * time.Millisecond},
		{Durability: "periodic", Fsync: "periodic", Loop: "peer", Events: 1000, Elapsed: 200 * time.Millisecond, CPU: 100 * time.Millisecond, P50: time.Millisecond, P99: 2 * time.Millisecond},
		{Durability: "periodic", Fsync: "periodic", Loop: LoopRunner, Runners: 1, Events: 1000, Elapsed: 400 * time.Millisecond, CPU: 300 * time.Millisecond, P50: 3 * time.Millisecond, P99: 5 * time.Millisecond},
	}
	var b bytes.Buffer
	WriteRulesTable(&b, rows)
	want := `| durability | fsync | loop | events/s | CPU µs/event | idle p50 ms | idle p99 ms | ÷ raw |
|---|---|---|---:|---:|---:|---:|---:|
| periodic | periodic | raw nats.go | 10000 | 90 | 1.00 | 2.00 | 1.00× |
| periodic | periodic | peer | 5000 | 100 | 1.00 | 2.00 | 0.50× |
| periodic | periodic | storeloop runner ×1 | 2500 | 300 | 3.00 | 5.00 | 0.25× |

periodic: storeloop runner ×1 ÷ peer: 0.50× events/s (goal ≥ 1.5×), CPU/event 3.00× (goal ≤ 1), idle p50 3.00× (goal ≤ 1.5)
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestRulesSmoke runs `storeloop bench rules` at a tiny size: every loop
// must finish its work exactly (Rules fails on a lost or repeated write,
// or on loyalty points that do not add up), in both durabilities.
func TestRulesSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cfg := RulesConfig{Events: 100, InFlight: 8, Runners: []int{1, 2}, Turns: 3}
	rows, err := Rules(ctx, &out, cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	type key struct {
		durability, loop string
		runners, events  int
	}
	var got []key
	for _, r := range rows {
		got = append(got, key{r.Durability, r.Loop, r.Runners, r.Events})
		if r.Elapsed <= 0 {
			t.Errorf("%v: no elapsed time", r)
		}
	}
	// The second runner row also works through the first one's 3+1 idle turns.
	var want []key
	for _, d := range []string{"periodic", "durable"} {
		want = append(want, key{d, RawLoop.Name, 0, 100}, key{d, LoopRunner, 1, 100}, key{d, LoopRunner, 2, 104}, key{d, LoopStoreUpsert, 0, 100})
	}
	if len(got) != len(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %v, want %v", i, got[i], want[i])
		}
	}
	if !strings.Contains(out.String(), "| durable | batch | storeloop runner ×2 |") {
		t.Errorf("no table row for 2 durable runners in:\n%s", out.String())
	}
}

// TestRulesProcessesSmoke runs the runner counts as real rulenode
// processes, at a tiny size: they must share the consumer and award every
// point exactly once.
func TestRulesProcessesSmoke(t *testing.T) {
	bin := procs.Build(t, "rulenode")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env, err := NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	orders, err := env.shippedOrders(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	cfg := RulesConfig{Events: 100, InFlight: 8, Turns: 2, Rulenode: bin}
	for i, count := range []int{1, 2} {
		row, err := env.measureProcesses(ctx, orders, count, cfg)
		if err != nil {
			t.Fatalf("%d processes: %v", count, err)
		}
		// The second measurement also works through the first one's 2+1 idle turns.
		if want := 100 + 3*i; row.Events != want || row.Runners != count || row.Loop != LoopProcesses {
			t.Errorf("row %+v, want %d events, %d runners", row, want, count)
		}
		if row.CPU <= 0 || row.P50 <= 0 {
			t.Errorf("%d processes: CPU %v, p50 %v: not measured", count, row.CPU, row.P50)
		}
	}
}

// TestMain removes the binaries procs built.
func TestMain(m *testing.M) {
	code := m.Run()
	procs.Cleanup()
	os.Exit(code)
}
