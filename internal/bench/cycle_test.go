package bench

import (
	"context"
	"testing"
	"time"

	"github.com/storeloop/storeloop/storenode"
)

func TestLatenciesQuantile(t *testing.T) {
	ms := func(ns ...int) Latencies {
		l := make(Latencies, len(ns))
		for i, n := range ns {
			l[i] = time.Duration(n) * time.Millisecond
		}
		return l
	}
	tests := []struct {
		name string
		l    Latencies
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of odd, unsorted", ms(3, 1, 2), 0.5, 2 * time.Millisecond},
		{"median of even is the lower", ms(4, 1, 3, 2), 0.5, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(func() []int {
			n := make([]int, 100)
			for i := range n {
				n[i] = 100 - i
			}
			return n
		}()...), 0.99, 99 * time.Millisecond},
		{"p0 is the least", ms(5, 9, 4), 0, 4 * time.Millisecond},
		{"p100 is the most", ms(5, 9, 4), 1, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append(Latencies(nil), tt.l...)
			if got := tt.l.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) of %v = %v, want %v", tt.q, tt.l, got, tt.want)
			}
			for i := range before {
				if before[i] != tt.l[i] {
					t.Fatalf("Quantile reordered its receiver: %v", tt.l)
				}
			}
		})
	}
}

// TestCycleTurns checks that each turn waits for its own write-back, and
// that a traced mode really exports to the sink while tracing off does not.
func TestCycleTurns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	sink, err := StartSpanSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cycle, err := env.StartCycle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cycle.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()

	const turns = 3
	for _, mode := range TracingModes[:2] { // off, always
		shutdown, err := SetupTracing(ctx, mode, sink)
		if err != nil {
			t.Fatal(err)
		}
		before := sink.Bytes.Load()
		for i := range turns {
			d, err := cycle.Turn(ctx)
			if err != nil || d <= 0 {
				t.Fatalf("%s: turn %d: %v, %v", mode.Name, i, d, err)
			}
		}
		if err := shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if sent := sink.Bytes.Load() - before; (sent > 0) != (mode.Sampler != nil) {
			t.Errorf("tracing=%s: %d bytes sent to the sink", mode.Name, sent)
		}
	}
	// Every turn's write-back was made, each once.
	n, err := env.Client.Bucket(cycleOut).Count(ctx, nil)
	if err != nil || n != 2*turns {
		t.Errorf("%s holds %d records (%v), want %d", cycleOut, n, err, 2*turns)
	}
}
