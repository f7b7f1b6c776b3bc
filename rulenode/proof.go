package rulenode

// WithoutProofCheck makes the runner act on events without checking that
// a store wrote them (see internal/provenance). Checking is the default;
// turning it off is for measuring its cost.
func WithoutProofCheck() RunnerOption { return func(o *runnerOptions) { o.noProofCheck = true } }
