// Package proof is the evidence a store node attaches to every message it
// appends, so that anyone holding the store's public key can tell the
// store's events from anything else published on the same subjects.
//
// The store signs once per group commit (a flight of messages), not per
// message: each message's leaf hash binds the stream, its sequence, its
// subject, its body and the leaf of the message the store believed came
// just before it (a chain); the flight's leaves form a Merkle tree whose
// root is signed with the store's ed25519 key (an nkey). Every message
// carries, in the [Header] header, what is needed to check it alone: its
// chain link, its index, the flight size, its Merkle path, the signer's
// public key and the signature. docs/protocol.md describes the format for
// verifiers in other languages.
package proof

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/nats-io/nkeys"
)

// Header is the message header carrying the proof.
const Header = "Storeloop-Proof"

// version is the first field of the header; a verifier refuses others.
const version = "1"

// Domain tags keep hashes of one kind from being taken for another.
const (
	leafTag = "storeloop/proof/v1/leaf\x00"
	nodeTag = "storeloop/proof/v1/node\x00"
	rootTag = "storeloop/proof/v1/root\x00"
)

// Hash is a SHA-256 digest: a leaf, a Merkle node or a root.
type Hash [sha256.Size]byte

// Caps a header decoder enforces: a flight is at most MaxFlight messages,
// so a path is at most 20 hashes, and a header at most 1,152 bytes.
const (
	MaxFlight    = 1 << 20
	maxPath      = 20
	maxHeaderLen = 1152
)

// Errors of verification, for errors.Is.
var (
	ErrMissing   = errors.New("proof: no " + Header + " header")
	ErrMalformed = errors.New("proof: malformed header")
	ErrUntrusted = errors.New("proof: signer key not trusted")
	ErrSignature = errors.New("proof: signature does not match")
)

// Message is what a leaf binds: where the message is in which stream, and
// what it says.
type Message struct {
	Seq     uint64
	Subject string
	Body    []byte
}

// Leaf returns the leaf hash of m in stream chained to prev:
//
//	SHA-256(leafTag ‖ u16 len(stream) ‖ stream ‖ u64 seq ‖ u16 len(subject) ‖ subject ‖ SHA-256(body) ‖ prev)
//
// with big-endian integers.
func Leaf(stream string, m Message, prev Hash) Hash {
	body := sha256.Sum256(m.Body)
	// One preimage on the stack and one Sum256: no hasher allocated per
	// message (replay hashes every message of the stream).
	var buf [256]byte
	b := append(buf[:0], leafTag...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(stream)))
	b = append(b, stream...)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Subject)))
	b = append(b, m.Subject...)
	b = append(b, body[:]...)
	b = append(b, prev[:]...)
	return sha256.Sum256(b)
}

func node(l, r Hash) Hash {
	var b [len(nodeTag) + 2*sha256.Size]byte
	copy(b[copy(b[:], nodeTag):], l[:])
	copy(b[len(nodeTag)+sha256.Size:], r[:])
	return sha256.Sum256(b[:])
}

// signed is the byte string the signature covers: the root and the flight
// size, so a path cannot be replayed against a tree of another shape.
func signed(root Hash, size int) []byte {
	b := make([]byte, 0, len(rootTag)+4+len(root))
	b = append(b, rootTag...)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	return append(b, root[:]...)
}

// tree returns the Merkle levels over leaves, leaves first, root last. A
// node without a sibling is carried up unchanged.
func tree(leaves []Hash) [][]Hash {
	levels := [][]Hash{leaves}
	for cur := leaves; len(cur) > 1; {
		next := make([]Hash, 0, (len(cur)+1)/2)
		for i := 0; i < len(cur); i += 2 {
			if i+1 < len(cur) {
				next = append(next, node(cur[i], cur[i+1]))
			} else {
				next = append(next, cur[i])
			}
		}
		levels = append(levels, next)
		cur = next
	}
	return levels
}

// pathLen is the length of the Merkle path of the leaf at index in a
// flight of size: one sibling per level where it has one.
func pathLen(index, size int) int {
	n := 0
	for width := size; width > 1; width = (width + 1) / 2 {
		if index^1 < width {
			n++
		}
		index /= 2
	}
	return n
}

// climb walks path from leaf, at index in a flight of size, up to the
// root. At each node on the way (the leaf first) it calls known with the
// node's level, position and hash; a true answer stops the walk there. It
// returns the node it stopped at (the root if none was known).
func climb(leaf Hash, index, size int, path []Hash, known func(level, pos int, h Hash) bool) (Hash, error) {
	if len(path) != pathLen(index, size) {
		return Hash{}, fmt.Errorf("%w: path of %d hashes, want %d", ErrMalformed, len(path), pathLen(index, size))
	}
	h, used := leaf, 0
	for level, width := 0, size; !known(level, index, h) && width > 1; level, width = level+1, (width+1)/2 {
		if index^1 < width { // else the node is carried up alone
			if index&1 == 0 {
				h = node(h, path[used])
			} else {
				h = node(path[used], h)
			}
			used++
		}
		index /= 2
	}
	return h, nil
}

// Proof is a decoded [Header] value.
type Proof struct {
	Key   string // the signer's public nkey
	Prev  Hash   // the leaf of the message before, zero for the first
	Index int    // position in the flight
	Size  int    // messages in the flight
	Path  []Hash // sibling hashes, leaf level first
	Sig   []byte // ed25519 over the flight's root
}

var b64 = base64.RawURLEncoding

// String encodes p as the header value:
//
//	1.<key>.<index>.<size>.<prev>.<path>.<sig>
//
// with prev, the concatenated path hashes and sig in unpadded base64url.
func (p *Proof) String() string {
	path := make([]byte, 0, len(p.Path)*len(Hash{}))
	for _, h := range p.Path {
		path = append(path, h[:]...)
	}
	return strings.Join([]string{version, p.Key, strconv.Itoa(p.Index), strconv.Itoa(p.Size),
		b64.EncodeToString(p.Prev[:]), b64.EncodeToString(path), b64.EncodeToString(p.Sig)}, ".")
}

// Parse decodes a header value. Every error wraps [ErrMissing] or
// [ErrMalformed].
func Parse(s string) (*Proof, error) {
	p := &Proof{}
	if err := parseInto(p, s); err != nil {
		return nil, err
	}
	return p, nil
}

// parseInto is Parse into p, cutting the fields out of s in place (a
// verifier parses every message's header: no slice of fields, and prev,
// path and signature decoded straight into p).
func parseInto(p *Proof, s string) error {
	if s == "" {
		return ErrMissing
	}
	if len(s) > maxHeaderLen {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(s))
	}
	var f [7]string
	rest := s
	for i := range len(f) - 1 {
		var ok bool
		if f[i], rest, ok = strings.Cut(rest, "."); !ok {
			return fmt.Errorf("%w: want 7 fields of version %s", ErrMalformed, version)
		}
	}
	f[6] = rest
	if f[0] != version || strings.Contains(rest, ".") {
		return fmt.Errorf("%w: want 7 fields of version %s", ErrMalformed, version)
	}
	p.Key = f[1]
	var err error
	if p.Index, err = strconv.Atoi(f[2]); err != nil {
		return fmt.Errorf("%w: index: %v", ErrMalformed, err)
	}
	if p.Size, err = strconv.Atoi(f[3]); err != nil {
		return fmt.Errorf("%w: size: %v", ErrMalformed, err)
	}
	if p.Size < 1 || p.Size > MaxFlight || p.Index < 0 || p.Index >= p.Size {
		return fmt.Errorf("%w: index %d of %d", ErrMalformed, p.Index, p.Size)
	}
	if b64.DecodedLen(len(f[4])) != len(p.Prev) {
		return fmt.Errorf("%w: prev", ErrMalformed)
	}
	if n, err := b64.Decode(p.Prev[:], bytesOf(f[4])); err != nil || n != len(p.Prev) {
		return fmt.Errorf("%w: prev", ErrMalformed)
	}
	var path [maxPath * sha256.Size]byte
	if b64.DecodedLen(len(f[5])) > len(path) {
		return fmt.Errorf("%w: path", ErrMalformed)
	}
	n, err := b64.Decode(path[:], bytesOf(f[5]))
	if err != nil || n%sha256.Size != 0 {
		return fmt.Errorf("%w: path", ErrMalformed)
	}
	p.Path = make([]Hash, n/sha256.Size)
	for i := range p.Path {
		p.Path[i] = Hash(path[i*sha256.Size:])
	}
	if b64.DecodedLen(len(f[6])) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature", ErrMalformed)
	}
	p.Sig = make([]byte, ed25519.SignatureSize)
	if n, err := b64.Decode(p.Sig, bytesOf(f[6])); err != nil || n != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature", ErrMalformed)
	}
	return nil
}

// bytesOf views s as bytes, without a copy, for a decoder that only reads
// them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Signer proves flights of one stream with one key.
type Signer struct {
	stream string
	priv   ed25519.PrivateKey // decoded once: nkeys decodes the seed at every Sign
	pub    string
}

// NewSigner returns a signer of stream's messages with kp, which must
// hold a seed.
func NewSigner(stream string, kp nkeys.KeyPair) (*Signer, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("proof: public key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("proof: key pair without a seed cannot sign: %w", err)
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("proof: seed is not an ed25519 seed: %v", err)
	}
	return &Signer{stream: stream, priv: ed25519.NewKeyFromSeed(raw), pub: pub}, nil
}

// PublicKey is the nkey string verifiers must trust.
func (s *Signer) PublicKey() string { return s.pub }

// Sign proves a flight of messages whose first follows a message with
// leaf prev. It returns each message's header value and the last leaf,
// the prev of the next flight.
func (s *Signer) Sign(msgs []Message, prev Hash) ([]string, Hash, error) {
	if len(msgs) == 0 || len(msgs) > MaxFlight {
		return nil, prev, fmt.Errorf("proof: flight of %d messages", len(msgs))
	}
	first := prev
	leaves := make([]Hash, len(msgs))
	for i, m := range msgs {
		leaves[i] = Leaf(s.stream, m, prev)
		prev = leaves[i]
	}
	levels := tree(leaves)
	root := levels[len(levels)-1][0]
	sig := ed25519.Sign(s.priv, signed(root, len(msgs)))
	// What every message's header shares is encoded once (the format is
	// Proof.String's).
	head := version + "." + s.pub + "."
	size := "." + strconv.Itoa(len(msgs)) + "."
	tail := "." + b64.EncodeToString(sig)
	var path []byte
	out := make([]string, len(msgs))
	for i := range msgs {
		path = path[:0]
		for level, lv := range levels[:len(levels)-1] {
			if j := i >> level; j^1 < len(lv) {
				path = append(path, lv[j^1][:]...)
			}
		}
		p := first
		if i > 0 {
			p = leaves[i-1]
		}
		b := make([]byte, 0, len(head)+len(size)+len(tail)+8+b64.EncodedLen(len(p)+len(path))+1)
		b = append(b, head...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, size...)
		b = b64.AppendEncode(b, p[:])
		b = append(b, '.')
		b = b64.AppendEncode(b, path)
		b = append(b, tail...)
		out[i] = string(b)
	}
	return out, prev, nil
}
