package proof_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events/proof"
)

func newSigner(t testing.TB) *proof.Signer {
	t.Helper()
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	s, err := proof.NewSigner("S", kp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func flight(first uint64, n int) []proof.Message {
	msgs := make([]proof.Message, n)
	for i := range msgs {
		msgs[i] = proof.Message{Seq: first + uint64(i), Subject: "bucket.orders.inserted", Body: fmt.Appendf(nil, `{"key":%d}`, i)}
	}
	return msgs
}

// TestSignVerify: every message of flights of every shape verifies alone,
// and the chain links each message to the one before, across flights.
func TestSignVerify(t *testing.T) {
	s := newSigner(t)
	v, err := proof.NewVerifier("S", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	var prev proof.Hash
	seq := uint64(1)
	for size := 1; size <= 17; size++ {
		msgs := flight(seq, size)
		hdrs, last, err := s.Sign(msgs, prev)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			p, leaf, err := v.Verify(m, hdrs[i])
			if err != nil {
				t.Fatalf("size %d message %d: %v", size, i, err)
			}
			if p.Prev != prev {
				t.Fatalf("size %d message %d: prev is not the previous leaf", size, i)
			}
			if p.Key != s.PublicKey() || p.Index != i || p.Size != size {
				t.Fatalf("size %d message %d: proof %+v", size, i, p)
			}
			prev = leaf
		}
		if last != prev {
			t.Fatalf("size %d: Sign's last leaf is not the last message's", size)
		}
		seq += uint64(size)
	}
}

// TestVerifyRefuses: any change to what a leaf binds, to the proof, or a
// key not trusted fails with the matching error.
func TestVerifyRefuses(t *testing.T) {
	s := newSigner(t)
	msgs := flight(10, 5)
	hdrs, _, err := s.Sign(msgs, proof.Hash{1})
	if err != nil {
		t.Fatal(err)
	}
	v, err := proof.NewVerifier("S", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	other, err := proof.NewVerifier("OTHER", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	untrusting, err := proof.NewVerifier("S", newSigner(t).PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[2]
	p, err := proof.Parse(hdrs[2])
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(p *proof.Proof)) string {
		q := *p
		q.Path = append([]proof.Hash(nil), p.Path...)
		f(&q)
		return q.String()
	}
	cases := []struct {
		name   string
		v      *proof.Verifier
		m      proof.Message
		header string
		want   error
	}{
		{"other body", v, proof.Message{Seq: m.Seq, Subject: m.Subject, Body: []byte(`{"key":99}`)}, hdrs[2], proof.ErrSignature},
		{"other sequence (republished)", v, proof.Message{Seq: m.Seq + 100, Subject: m.Subject, Body: m.Body}, hdrs[2], proof.ErrSignature},
		{"other subject", v, proof.Message{Seq: m.Seq, Subject: "bucket.orders.deleted", Body: m.Body}, hdrs[2], proof.ErrSignature},
		{"other stream", other, m, hdrs[2], proof.ErrSignature},
		{"another message's header", v, m, hdrs[3], proof.ErrSignature},
		{"other prev", v, m, mutate(func(q *proof.Proof) { q.Prev[0] ^= 1 }), proof.ErrSignature},
		{"other index", v, m, mutate(func(q *proof.Proof) { q.Index = 3 }), proof.ErrSignature},
		{"other size", v, m, mutate(func(q *proof.Proof) { q.Size = 6 }), proof.ErrSignature},
		{"path cut", v, m, mutate(func(q *proof.Proof) { q.Path = q.Path[:1] }), proof.ErrMalformed},
		{"signature flipped", v, m, mutate(func(q *proof.Proof) { q.Sig = append([]byte(nil), q.Sig...); q.Sig[0] ^= 1 }), proof.ErrSignature},
		{"untrusted key", untrusting, m, hdrs[2], proof.ErrUntrusted},
		{"no header", v, m, "", proof.ErrMissing},
		{"garbage", v, m, "not a proof", proof.ErrMalformed},
		{"other version", v, m, "2" + strings.TrimPrefix(hdrs[2], "1"), proof.ErrMalformed},
		{"an eighth field", v, m, hdrs[2] + ".x", proof.ErrMalformed},
		{"six fields", v, m, hdrs[2][:strings.LastIndex(hdrs[2], ".")], proof.ErrMalformed},
		{"prev too long", v, m, mutateText(hdrs[2], 4, "AA"), proof.ErrMalformed},
		{"signature too short", v, m, mutateText(hdrs[2], 6, ""), proof.ErrMalformed},
	}
	// Each case is refused by a verifier that never saw the flight and by
	// one that verified all of it (it climbs from remembered nodes).
	warm, err := proof.NewVerifier("S", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if _, _, err := warm.Verify(m, hdrs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := c.v.Verify(c.m, c.header); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			if c.v != v {
				return
			}
			if _, _, err := warm.Verify(c.m, c.header); !errors.Is(err, c.want) {
				t.Fatalf("Verify after the flight = %v, want %v", err, c.want)
			}
		})
	}
	// The original still verifies after the cache saw the root.
	if _, _, err := v.Verify(m, hdrs[2]); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAnyOrder: every message of flights of every shape verifies,
// read in order, backwards or twice, by a verifier that remembers their
// trees' nodes.
func TestVerifyAnyOrder(t *testing.T) {
	s := newSigner(t)
	for _, size := range []int{1, 2, 3, 5, 8, 13, 37, 64} {
		msgs := flight(1, size)
		hdrs, _, err := s.Sign(msgs, proof.Hash{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := proof.NewVerifier("S", s.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		for _, order := range [][]int{ascending(size), descending(size), ascending(size)} {
			for _, i := range order {
				if _, _, err := v.Verify(msgs[i], hdrs[i]); err != nil {
					t.Fatalf("flight of %d, message %d: %v", size, i, err)
				}
				other := proof.Message{Seq: msgs[i].Seq, Subject: msgs[i].Subject, Body: []byte("forged")}
				if _, _, err := v.Verify(other, hdrs[i]); !errors.Is(err, proof.ErrSignature) {
					t.Fatalf("flight of %d, message %d forged: %v, want ErrSignature", size, i, err)
				}
			}
		}
	}
}

func ascending(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func descending(n int) []int {
	out := ascending(n)
	slices.Reverse(out)
	return out
}

// mutateText returns header with suffix appended to its field i, or
// with two characters cut from it when suffix is empty.
func mutateText(header string, i int, suffix string) string {
	f := strings.Split(header, ".")
	if suffix == "" {
		f[i] = f[i][:len(f[i])-2]
	} else {
		f[i] += suffix
	}
	return strings.Join(f, ".")
}

// TestParseRoundTrip: String and Parse are inverse.
func TestParseRoundTrip(t *testing.T) {
	hdrs, _, err := newSigner(t).Sign(flight(1, 7), proof.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hdrs {
		p, err := proof.Parse(h)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != h {
			t.Fatalf("round trip\n%s\n%s", h, p.String())
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := t.TempDir() + "/sub/proof.nk"
	kp, err := proof.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := proof.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := kp.PublicKey()
	b, _ := again.PublicKey()
	if a != b {
		t.Fatalf("key changed: %s then %s", a, b)
	}
}

// FuzzParse: no header value panics the decoder, and what it accepts
// encodes back to the same value.
func FuzzParse(f *testing.F) {
	hdrs, _, err := newSigner(f).Sign(flight(1, 3), proof.Hash{})
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range hdrs {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := proof.Parse(s)
		if err != nil {
			if !errors.Is(err, proof.ErrMalformed) && !errors.Is(err, proof.ErrMissing) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrMissing", err)
			}
			return
		}
		if _, err := proof.Parse(p.String()); err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", p.String(), err)
		}
	})
}

// BenchmarkSign is the store's cost per message in flights of 1, 8 and
// 64 messages of 500 bytes (a flight is one group commit).
func BenchmarkSign(b *testing.B) {
	s := newSigner(b)
	for _, size := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("flight=%d", size), func(b *testing.B) {
			msgs := flight(1, size)
			for i := range msgs {
				msgs[i].Body = make([]byte, 500)
			}
			for b.Loop() {
				if _, _, err := s.Sign(msgs, proof.Hash{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
			hdrs, _, _ := s.Sign(msgs, proof.Hash{})
			b.ReportMetric(float64(len(hdrs[0])), "header_bytes")
		})
	}
}

// BenchmarkVerify is a consumer's cost per message in flights of 1, 8 and
// 64 messages of 500 bytes, seeing each flight once: one signature check
// per flight.
func BenchmarkVerify(b *testing.B) {
	s := newSigner(b)
	for _, size := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("flight=%d", size), func(b *testing.B) {
			msgs := flight(1, size)
			for i := range msgs {
				msgs[i].Body = make([]byte, 500)
			}
			hdrs, _, _ := s.Sign(msgs, proof.Hash{})
			for b.Loop() {
				v, _ := proof.NewVerifier("S", s.PublicKey())
				for i, m := range msgs {
					if _, _, err := v.Verify(m, hdrs[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
		})
	}
}

// TestLargestFlight: the header of a message in the largest flight fits
// the decoder's cap.
func TestLargestFlight(t *testing.T) {
	p := proof.Proof{Key: newSigner(t).PublicKey(), Index: proof.MaxFlight - 1, Size: proof.MaxFlight,
		Path: make([]proof.Hash, 20), Sig: make([]byte, 64)}
	if _, err := proof.Parse(p.String()); err != nil {
		t.Fatalf("%d bytes: %v", len(p.String()), err)
	}
}

// TestStatement: a statement verifies under its kind, stream and key
// only; changed bytes, another kind, another stream, an untrusted key or
// a flight's signature are refused with the error saying which.
func TestStatement(t *testing.T) {
	s := newSigner(t)
	v, err := proof.NewVerifier("S", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("header bytes")
	sig := s.SignStatement("snapshot", msg)
	if err := v.VerifyStatement("snapshot", msg, s.PublicKey(), sig); err != nil {
		t.Fatalf("own statement: %v", err)
	}
	other, err := proof.NewVerifier("T", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	stranger := newSigner(t)
	hdrs, _, err := s.Sign(flight(1, 1), proof.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proof.Parse(hdrs[0])
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		do   func() error
	}{
		{"changed bytes", proof.ErrSignature, func() error { return v.VerifyStatement("snapshot", []byte("header bytez"), s.PublicKey(), sig) }},
		{"another kind", proof.ErrSignature, func() error { return v.VerifyStatement("snapshot2", msg, s.PublicKey(), sig) }},
		{"another stream", proof.ErrSignature, func() error { return other.VerifyStatement("snapshot", msg, s.PublicKey(), sig) }},
		{"untrusted key", proof.ErrUntrusted, func() error {
			return v.VerifyStatement("snapshot", msg, stranger.PublicKey(), stranger.SignStatement("snapshot", msg))
		}},
		{"short signature", proof.ErrSignature, func() error { return v.VerifyStatement("snapshot", msg, s.PublicKey(), sig[:10]) }},
		{"a flight's signature", proof.ErrSignature, func() error { return v.VerifyStatement("snapshot", msg, s.PublicKey(), p.Sig) }},
	}
	for _, tc := range cases {
		if err := tc.do(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
}

// TestVerifyConcurrent: goroutines verifying the same flights at once
// (rule workers share a verifier) all succeed and refuse forgeries.
func TestVerifyConcurrent(t *testing.T) {
	s := newSigner(t)
	msgs := flight(1, 37)
	hdrs, _, err := s.Sign(msgs, proof.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := proof.NewVerifier("S", s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			order := ascending(len(msgs))
			if w%2 == 1 {
				order = descending(len(msgs))
			}
			for _, i := range order {
				if _, _, err := v.Verify(msgs[i], hdrs[i]); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
					return
				}
				forged := proof.Message{Seq: msgs[i].Seq, Subject: msgs[i].Subject, Body: []byte("forged")}
				if _, _, err := v.Verify(forged, hdrs[i]); !errors.Is(err, proof.ErrSignature) {
					errs <- fmt.Errorf("message %d forged: %v, want ErrSignature", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
