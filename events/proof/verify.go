package proof

import (
	"crypto/ed25519"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nkeys"
)

// MetadataKeys is the stream config Metadata entry listing the trusted
// public keys, comma separated. A store adds its own key and keeps the
// others, so events signed with a retired key still verify.
const MetadataKeys = "storeloop.proof.keys"

// MetadataSince is the stream config Metadata entry holding the first
// sequence that must carry a proof, set when a store first signs a stream
// that already held events (written before proofs existed, which stay
// trusted as they are). Absent: every message must.
const MetadataSince = "storeloop.proof.since"

// Since returns the MetadataSince value of md, 0 when absent or invalid.
func Since(md map[string]string) uint64 {
	v, err := strconv.ParseUint(md[MetadataSince], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// ParseKeys splits a MetadataKeys value.
func ParseKeys(s string) []string {
	var keys []string
	for k := range strings.SplitSeq(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// cacheSize bounds the verified signatures a Verifier remembers; when full
// it starts again (a flight's messages arrive close together).
const cacheSize = 4096

// Verifier checks proofs against a set of trusted keys. One ed25519
// verification per flight: a verified (key, root, signature) is
// remembered. Safe for concurrent use.
type Verifier struct {
	stream string
	mu     sync.Mutex
	keys   map[string]ed25519.PublicKey
	ok     map[string]struct{} // verified key ‖ signed bytes ‖ signature
}

// NewVerifier returns a verifier of stream's messages trusting keys
// (public nkeys).
func NewVerifier(stream string, keys ...string) (*Verifier, error) {
	v := &Verifier{stream: stream, keys: map[string]ed25519.PublicKey{}, ok: map[string]struct{}{}}
	return v, v.Trust(keys...)
}

// Trust adds keys to the trusted set.
func (v *Verifier) Trust(keys ...string) error {
	parsed := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		raw, err := publicKey(k)
		if err != nil {
			return err
		}
		parsed[k] = raw
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, raw := range parsed {
		v.keys[k] = raw
	}
	return nil
}

func publicKey(k string) (ed25519.PublicKey, error) {
	kp, err := nkeys.FromPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("proof: public key %q: %w", k, err)
	}
	if _, err := kp.Seed(); err == nil {
		return nil, fmt.Errorf("proof: %q is a seed, not a public key", k)
	}
	// The raw key follows the one-byte prefix; nkeys checked the CRC.
	pub, _ := kp.PublicKey()
	raw, err := nkeys.Decode(nkeys.Prefix(pub), []byte(pub))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("proof: public key %q: not ed25519", k)
	}
	return ed25519.PublicKey(raw), nil
}

// Verify checks the proof header of m. It returns the decoded proof and
// m's leaf; the caller checks the chain (the proof's Prev against the leaf
// of the message it accepted last) where it knows the history. Errors wrap
// ErrMissing, ErrMalformed, ErrUntrusted or ErrSignature.
func (v *Verifier) Verify(m Message, header string) (*Proof, Hash, error) {
	p, err := Parse(header)
	if err != nil {
		return nil, Hash{}, err
	}
	leaf := Leaf(v.stream, m, p.Prev)
	root, err := rootOf(leaf, p.Index, p.Size, p.Path)
	if err != nil {
		return nil, Hash{}, err
	}
	msg := signed(root, p.Size)
	id := p.Key + string(msg) + string(p.Sig)
	v.mu.Lock()
	key, trusted := v.keys[p.Key]
	_, seen := v.ok[id]
	v.mu.Unlock()
	if !trusted {
		return p, leaf, fmt.Errorf("%w: %s", ErrUntrusted, p.Key)
	}
	if seen {
		return p, leaf, nil
	}
	if !ed25519.Verify(key, msg, p.Sig) {
		return p, leaf, ErrSignature
	}
	v.mu.Lock()
	if len(v.ok) >= cacheSize {
		clear(v.ok)
	}
	v.ok[id] = struct{}{}
	v.mu.Unlock()
	return p, leaf, nil
}
