package gcpause

import (
	"math"
	"runtime/debug"
	"testing"
)

// settings reads the GC percent and memory limit without changing them.
func settings() (percent int, limit int64) {
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

// setting sets both for the test, restoring them after it.
func setting(t *testing.T, percent int, limit int64) {
	t.Helper()
	p, l := settings()
	debug.SetGCPercent(percent)
	debug.SetMemoryLimit(limit)
	t.Cleanup(func() {
		debug.SetGCPercent(p)
		debug.SetMemoryLimit(l)
	})
}

// TestPauseOverlapsAndRestores: overlapping pauses keep the collector off
// until the last ends, under a limit of their own when none was set, and
// then the operator's settings are back.
func TestPauseOverlapsAndRestores(t *testing.T) {
	setting(t, 150, math.MaxInt64)
	resume1 := Pause(1 << 30)
	resume2 := Pause(1 << 30)
	p, l := settings()
	if p != -1 || l == math.MaxInt64 || l < 1<<30 {
		t.Fatalf("paused: GC percent %d, limit %d; want -1 and a limit above the headroom", p, l)
	}
	resume1()
	resume1() // a second call does nothing
	if p2, l2 := settings(); p2 != -1 || l2 != l {
		t.Fatalf("one pause still on: GC percent %d, limit %d; want -1, %d", p2, l2, l)
	}
	resume2()
	if p, l := settings(); p != 150 || l != math.MaxInt64 {
		t.Fatalf("resumed: GC percent %d, limit %d; want 150 and no limit", p, l)
	}
}

// TestPauseKeepsOperatorLimit: a GOMEMLIMIT set by the operator stays
// the net, and GOGC=off stays off.
func TestPauseKeepsOperatorLimit(t *testing.T) {
	setting(t, -1, 3<<30)
	resume := Pause(1 << 30)
	if p, l := settings(); p != -1 || l != 3<<30 {
		t.Fatalf("paused: GC percent %d, limit %d; want -1, %d", p, l, int64(3<<30))
	}
	resume()
	if p, l := settings(); p != -1 || l != 3<<30 {
		t.Fatalf("resumed: GC percent %d, limit %d; want -1, %d", p, l, int64(3<<30))
	}
}
