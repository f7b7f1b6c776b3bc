package proof

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
)

// A statement is something other than a flight of messages the store
// vouches for with the same key (a snapshot's header): its bytes are
// signed under a tag naming their kind, so that a signature over one kind
// can never be taken for another, nor for a flight's root, nor for
// another stream's:
//
//	ed25519(statementTag ‖ u16 len(stream) ‖ stream ‖ kind ‖ 0x00 ‖ bytes)
const statementTag = "storeloop/statement/v1\x00"

func statement(stream, kind string, msg []byte) []byte {
	b := make([]byte, 0, len(statementTag)+2+len(stream)+len(kind)+1+len(msg))
	b = append(b, statementTag...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(stream)))
	b = append(append(append(b, stream...), kind...), 0)
	return append(b, msg...)
}

// SignStatement signs msg as a statement of kind about the signer's
// stream; the verifier needs
// s.PublicKey() beside the signature.
func (s *Signer) SignStatement(kind string, msg []byte) []byte {
	return ed25519.Sign(s.priv, statement(s.stream, kind, msg))
}

// VerifyStatement checks that key, a trusted key, signed msg as a
// statement of kind about the verifier's stream. Errors wrap ErrUntrusted or ErrSignature.
func (v *Verifier) VerifyStatement(kind string, msg []byte, key string, sig []byte) error {
	v.mu.Lock()
	pub, trusted := v.keys[key]
	v.mu.Unlock()
	if !trusted {
		return fmt.Errorf("%w: %q", ErrUntrusted, key)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, statement(v.stream, kind, msg), sig) {
		return ErrSignature
	}
	return nil
}
