package daemon

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target (GOGC) the daemons
// run with when the environment sets none. A store or rule node keeps a
// small live heap and allocates per event, so at Go's default of 100 it
// collects very often; 400 trades a few more megabytes of heap for
// fewer collections (see docs/benchmarks.md, "Rule path: the idle cycle
// and the GC"). GOMEMLIMIT still bounds the heap when it is set.
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
