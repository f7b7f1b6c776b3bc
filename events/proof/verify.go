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

// cacheSize bounds the verified flights a Verifier remembers; when full
// it starts again (a flight's messages arrive close together).
const cacheSize = 4096

// Verifier checks proofs against a set of trusted keys. One ed25519
// verification per flight: a verified flight is remembered with the nodes
// of its Merkle tree met since, so that the next message of the flight
// read in order climbs its path only until it meets one (about two hashes
// instead of log2 of the flight's size). Safe for concurrent use.
type Verifier struct {
	stream string
	mu     sync.Mutex
	keys   map[string]ed25519.PublicKey
	ok     map[flight]*verified
}

// flight names a signed flight: its signer, its size and the signature.
type flight struct {
	key  string
	size int
	sig  [ed25519.SignatureSize]byte
}

// verified is what a flight's signature proved: per level of its tree,
// the last node met there, the root at the top. Every one of them is
// authenticated: its path leads to the signed root.
type verified struct {
	nodes [maxPath + 1]treeNode
}

// treeNode is a node of a flight's tree; pos is its position + 1 (0: none).
type treeNode struct {
	pos int
	h   Hash
}

// NewVerifier returns a verifier of stream's messages trusting keys
// (public nkeys).
func NewVerifier(stream string, keys ...string) (*Verifier, error) {
	v := &Verifier{stream: stream, keys: map[string]ed25519.PublicKey{}, ok: map[flight]*verified{}}
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
	id := flight{key: p.Key, size: p.Size, sig: [ed25519.SignatureSize]byte(p.Sig)}
	var met [maxPath + 1]treeNode // the nodes climbed through, by level
	known := false
	v.mu.Lock()
	key, trusted := v.keys[p.Key]
	f := v.ok[id]
	root, err := climb(leaf, p.Index, p.Size, p.Path, func(level, pos int, h Hash) bool {
		n := treeNode{pos + 1, h}
		if f != nil && f.nodes[level] == n {
			known = true
			return true
		}
		met[level] = n
		return false
	})
	if err == nil && trusted && known {
		f.remember(&met) // they lead to a node of the signed tree
		v.mu.Unlock()
		return p, leaf, nil
	}
	v.mu.Unlock()
	switch {
	case err != nil:
		return nil, Hash{}, err
	case !trusted:
		return p, leaf, fmt.Errorf("%w: %s", ErrUntrusted, p.Key)
	case !ed25519.Verify(key, signed(root, p.Size), p.Sig):
		return p, leaf, ErrSignature
	}
	f = &verified{}
	f.remember(&met) // the root at the top
	v.mu.Lock()
	if len(v.ok) >= cacheSize {
		clear(v.ok)
	}
	v.ok[id] = f
	v.mu.Unlock()
	return p, leaf, nil
}

// remember keeps the nodes of met (those set) as the last met per level.
func (f *verified) remember(met *[maxPath + 1]treeNode) {
	for level, n := range met {
		if n.pos != 0 {
			f.nodes[level] = n
		}
	}
}
