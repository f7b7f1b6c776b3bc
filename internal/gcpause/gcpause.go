// Package gcpause turns the garbage collector off while a process builds
// a large structure that only grows, such as a state decoded from a
// snapshot: every collection during it would mark a heap that is all
// live, work thrown away (at a million records, about as much CPU as the
// decoding itself). A memory limit is the safety net: past it the
// collector runs again. What an operator set stays theirs: a GOMEMLIMIT
// is kept as the net, and GOGC=off is left off; both settings are
// restored when the last pause ends.
package gcpause

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

var (
	mu      sync.Mutex
	paused  int   // pauses in progress: the settings are restored by the last
	percent int   // the GC percent before the first
	limit   int64 // the memory limit before the first
)

// Pause turns the collector off until the returned resume is called,
// with a memory limit of the memory in use now plus headroom bytes
// unless a limit is set already. Pauses may overlap; resume restores the
// collector when the last one ends. Call resume exactly once.
func Pause(headroom int64) (resume func()) {
	mu.Lock()
	defer mu.Unlock()
	if paused == 0 {
		limit = debug.SetMemoryLimit(-1)
		if limit == math.MaxInt64 { // none set: ours is the net
			debug.SetMemoryLimit(inUse() + headroom)
		}
		percent = debug.SetGCPercent(-1)
	}
	paused++
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if paused--; paused == 0 {
				debug.SetGCPercent(percent)
				debug.SetMemoryLimit(limit)
			}
		})
	}
}

// inUse is the memory the runtime holds from the system and has not
// given back: what the memory limit counts.
func inUse() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}
