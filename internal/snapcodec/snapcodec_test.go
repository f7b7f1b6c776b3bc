package snapcodec

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	rec := map[string]any{
		"s": "héllo", "n": 2598.5, "neg": -0.0, "max": math.MaxFloat64, "t": true, "f": false, "null": nil,
		"arr": []any{1.0, "x", []any{}, map[string]any{"deep": []any{nil}}}, "obj": map[string]any{}, "empty": "",
	}
	w := &Writer{}
	w.Uvarint(7)
	w.String("key")
	w.Bytes([]byte{0, 1, 2})
	if err := w.Object(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Value(int64(3)); err != nil { // as a replay would decode it: a number
		t.Fatal(err)
	}
	r := NewReader(w.Buf)
	if v := r.Uvarint(); v != 7 {
		t.Fatalf("uvarint %d", v)
	}
	if s := r.String(); s != "key" {
		t.Fatalf("string %q", s)
	}
	if b := r.Bytes(); !reflect.DeepEqual(b, []byte{0, 1, 2}) {
		t.Fatalf("bytes %v", b)
	}
	if got := r.Object(); !reflect.DeepEqual(got, rec) {
		t.Fatalf("object\n%#v\nwant\n%#v", got, rec)
	}
	if v := r.Value(); v != 3.0 {
		t.Fatalf("int64 read back as %#v, want 3.0", v)
	}
	if r.Err() != nil || r.Len() != 0 {
		t.Fatalf("err %v, %d bytes left", r.Err(), r.Len())
	}
	if err := (&Writer{}).Value(struct{}{}); err == nil {
		t.Fatal("a struct encoded")
	}
}

// TestCorrupt: every truncation of a valid encoding, and a count larger
// than the input, is ErrCorrupt, never a panic or a huge allocation.
func TestCorrupt(t *testing.T) {
	w := &Writer{}
	if err := w.Object(map[string]any{"a": []any{"b", 1.0, map[string]any{"c": true}}}); err != nil {
		t.Fatal(err)
	}
	for i := range len(w.Buf) {
		r := NewReader(w.Buf[:i])
		r.Object()
		if !errors.Is(r.Err(), ErrCorrupt) {
			t.Fatalf("cut at %d: err %v, want ErrCorrupt", i, r.Err())
		}
	}
	r := NewReader([]byte{tagArray, 0xff, 0xff, 0xff, 0xff, 0x0f})
	r.Value()
	if !errors.Is(r.Err(), ErrCorrupt) {
		t.Fatalf("huge count: err %v", r.Err())
	}
}

func FuzzReader(f *testing.F) {
	w := &Writer{}
	_ = w.Object(map[string]any{"a": []any{"b", 1.0, nil, map[string]any{"c": true}}})
	f.Add(w.Buf)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		for r.Err() == nil && r.Len() > 0 {
			r.Value()
		}
	})
}

// TestSliceAndReset: Slice reads a length-prefixed section without
// copying it, and a reader Reset onto it decodes it, an error of the
// input before forgotten.
func TestSliceAndReset(t *testing.T) {
	var sec Writer
	sec.String("k")
	if err := sec.Object(map[string]any{"v": 1.0}); err != nil {
		t.Fatal(err)
	}
	w := &Writer{}
	w.Bytes(sec.Buf)
	w.Uvarint(5)
	r := NewReader(w.Buf)
	got := r.Slice()
	if string(got) != string(sec.Buf) || &got[0] != &w.Buf[1] || r.Uvarint() != 5 || r.Len() != 0 {
		t.Fatalf("slice %q, want %q sharing the input", got, sec.Buf)
	}
	part := NewReader([]byte{0x80}) // a varint cut short
	part.Uvarint()
	if part.Err() == nil {
		t.Fatal("a cut varint read")
	}
	part.Reset(got)
	if k, rec := part.String(), part.Object(); part.Err() != nil || k != "k" || !reflect.DeepEqual(rec, map[string]any{"v": 1.0}) || part.Len() != 0 {
		t.Fatalf("after Reset: %q %v, err %v", k, rec, part.Err())
	}
}
