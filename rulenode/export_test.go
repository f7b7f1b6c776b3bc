package rulenode

// TemporalKey exposes the KV key of a temporal rule's state to the tests.
var TemporalKey = temporalKey

// RateOf is the rate rule ruleID's writes are paced at by the runner's
// budget guard now; 0 without one.
func (r *Runner) RateOf(ruleID string) float64 {
	if g := r.guard.Load(); g != nil && g.rates[ruleID] != nil {
		return g.rates[ruleID].rate
	}
	return 0
}

// PendingGrace is how long a pending temporal firing is left to its
// writer before the deadline watchers fire it.
const PendingGrace = pendingGrace
