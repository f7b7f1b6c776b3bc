package storenode

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events/proof"
)

// fuzzSnapshotSigner signs the fuzz seeds with a fixed key, so that the
// committed corpus stays valid.
func fuzzSnapshotSigner(t testing.TB) (*proof.Signer, *proof.Verifier) {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteServer, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := proof.NewSigner("EVENTS", kp)
	if err != nil {
		t.Fatal(err)
	}
	v, err := proof.NewVerifier("EVENTS", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// fuzzSnapshotSeed is a well-formed signed snapshot object with body.
func fuzzSnapshotSeed(t testing.TB, s *proof.Signer, body []byte) ([]byte, snapshotHeader) {
	sum := sha256.Sum256(body)
	h := snapshotHeader{Format: snapshotFormat, Stream: "EVENTS", StreamCreated: time.Unix(1700000000, 123456789).UTC(), Seq: 42,
		Prev: hex.EncodeToString(sum[:]), Taken: time.Unix(1700000100, 0).UTC(), Records: 3, BodyBytes: len(body), SHA256: hex.EncodeToString(sum[:])}
	h.sign(s)
	line, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(line, '\n'), body...), h
}

// FuzzParseSnapshot: any object either parses into a header whose body is
// exactly the bytes after its line, of the size and checksum it claims,
// or is refused; no input panics, and only the signed seed's header bytes
// verify under the key that signed it.
func FuzzParseSnapshot(f *testing.F) {
	s, v := fuzzSnapshotSigner(f)
	seed, signed := fuzzSnapshotSeed(f, s, []byte("body\n\x00\x01"))
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"format":3,"bodyBytes":-1,"sha256":""}` + "\n"))
	f.Fuzz(func(t *testing.T, obj []byte) {
		h, body, err := parseSnapshot(obj)
		if err != nil {
			return
		}
		_, rest, _ := bytes.Cut(obj, []byte{'\n'})
		sum := sha256.Sum256(body)
		if h.Format != snapshotFormat || !bytes.Equal(body, rest) || len(body) != h.BodyBytes || hex.EncodeToString(sum[:]) != h.SHA256 {
			t.Fatalf("parsed %+v with a %d-byte body that does not match it", h, len(body))
		}
		if h.verify(v) == nil && !bytes.Equal(h.signedBytes(), signed.signedBytes()) {
			t.Fatalf("header %+v verifies but is not the one signed", h)
		}
	})
}
