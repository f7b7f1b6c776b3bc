package daemon

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target (GOGC) a rule node
// runs with when the environment sets none. A rule node keeps a small
// live heap (a few MB) and allocates per event, so at Go's default of 100
// it collects very often; 400 trades a few more megabytes of heap for
// fewer collections (see docs/benchmarks.md, "The idle cycle hop by hop,
// logging and the GC"). Not the store node: its live heap is its state
// (hundreds of MB at a million records), where letting the heap grow to
// 5× that would cost far more memory than the collections save.
// GOMEMLIMIT still bounds the heap when it is set.
const DefaultGCPercent = 400

// TuneGC sets the garbage collector's target to DefaultGCPercent unless
// GOGC is set in the environment (the runtime applied it at start, and
// it wins; an empty GOGC is unset, as for the runtime). It returns the
// target in force.
func TuneGC() int {
	if os.Getenv("GOGC") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
