package daemon

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: without GOGC the daemons collect at DefaultGCPercent; with
// it, the environment's target stands (GOGC=off included).
func TestTuneGC(t *testing.T) {
	t.Cleanup(func() { debug.SetGCPercent(100) })
	t.Setenv("GOGC", "") // empty is unset, for the runtime too
	debug.SetGCPercent(100)
	if got := TuneGC(); got != DefaultGCPercent {
		t.Fatalf("TuneGC() = %d without GOGC, want %d", got, DefaultGCPercent)
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Fatalf("GC percent %d without GOGC, want %d", got, DefaultGCPercent)
	}

	for _, tc := range []struct {
		env     string
		percent int // as the runtime applied GOGC at start
	}{{"150", 150}, {"off", -1}} {
		t.Setenv("GOGC", tc.env)
		debug.SetGCPercent(tc.percent)
		if got := TuneGC(); got != tc.percent {
			t.Fatalf("TuneGC() = %d with GOGC=%s, want %d", got, tc.env, tc.percent)
		}
		if got := debug.SetGCPercent(100); got != tc.percent {
			t.Fatalf("GC percent %d with GOGC=%s, want it kept at %d", got, tc.env, tc.percent)
		}
	}
}
