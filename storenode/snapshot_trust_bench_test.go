package storenode

import "testing"

// BenchmarkSnapshotHeaderSignature is what signing costs a snapshot taken
// and checking costs a snapshot loaded: one ed25519 signature or
// verification over the header's canonical bytes, whatever the state's
// size (the body is covered by its SHA-256, computed anyway).
func BenchmarkSnapshotHeaderSignature(b *testing.B) {
	s, v := fuzzSnapshotSigner(b)
	_, h := fuzzSnapshotSeed(b, s, []byte("body"))
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			h.sign(s)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if err := h.verify(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
