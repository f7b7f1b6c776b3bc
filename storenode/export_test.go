package storenode

// WithoutProofs turns event proofs off, for benchmarks measuring what they
// cost: events are not signed and replay does not check them.
func WithoutProofs() Option {
	return func(c *config) error { c.proofOff = true; return nil }
}
