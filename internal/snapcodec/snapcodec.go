// Package snapcodec is the binary encoding of store snapshots: unsigned
// varints, length-prefixed byte strings and the JSON value model of
// records (nil, bool, float64, string, []any, map[string]any) as tagged
// values, written and read without reflection. It is compact and fast to
// decode where JSON is neither; a snapshot is checked by its checksum
// before it is decoded, so the reader guards against malformed input only
// as far as never panicking or allocating past the input's size.
package snapcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Value tags.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagNumber
	tagString
	tagArray
	tagObject
)

// maxDepth bounds the nesting a reader follows (records are bounded in
// size, so nesting is too; this keeps a corrupt input from recursing deep).
const maxDepth = 1000

// ErrCorrupt is returned for input that is not a valid encoding.
var ErrCorrupt = errors.New("snapcodec: corrupt input")

// Writer appends encodings to a buffer.
type Writer struct{ Buf []byte }

// Uvarint appends v.
func (w *Writer) Uvarint(v uint64) { w.Buf = binary.AppendUvarint(w.Buf, v) }

// Bytes appends b with its length.
func (w *Writer) Bytes(b []byte) {
	w.Uvarint(uint64(len(b)))
	w.Buf = append(w.Buf, b...)
}

// String appends s with its length.
func (w *Writer) String(s string) {
	w.Uvarint(uint64(len(s)))
	w.Buf = append(w.Buf, s...)
}

// Value appends a JSON-model value; any other type is an error.
func (w *Writer) Value(v any) error {
	switch x := v.(type) {
	case nil:
		w.Buf = append(w.Buf, tagNull)
	case bool:
		if x {
			w.Buf = append(w.Buf, tagTrue)
		} else {
			w.Buf = append(w.Buf, tagFalse)
		}
	case float64:
		w.number(x)
	case int: // JSON has numbers only: what a replay of the same record decodes
		w.number(float64(x))
	case int64:
		w.number(float64(x))
	case string:
		w.Buf = append(w.Buf, tagString)
		w.String(x)
	case []any:
		w.Buf = append(w.Buf, tagArray)
		w.Uvarint(uint64(len(x)))
		for _, e := range x {
			if err := w.Value(e); err != nil {
				return err
			}
		}
	case map[string]any:
		return w.Object(x)
	default:
		return fmt.Errorf("snapcodec: cannot encode a %T", v)
	}
	return nil
}

func (w *Writer) number(f float64) {
	w.Buf = append(w.Buf, tagNumber)
	w.Buf = binary.LittleEndian.AppendUint64(w.Buf, math.Float64bits(f))
}

// Object appends m as an object value (a nil map reads back as an empty one).
func (w *Writer) Object(m map[string]any) error {
	w.Buf = append(w.Buf, tagObject)
	w.Uvarint(uint64(len(m)))
	for k, e := range m {
		w.String(k)
		if err := w.Value(e); err != nil {
			return err
		}
	}
	return nil
}

// Reader reads encodings from a buffer. The first error sticks: later
// reads return zero values and Err reports it.
type Reader struct {
	buf   []byte
	err   error
	names map[string]string // object member names, interned: records repeat them
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{buf: b, names: map[string]string{}} }

// Reset makes r read b, keeping the member names it interned: one reader
// per goroutine decodes many sections of one input.
func (r *Reader) Reset(b []byte) { r.buf, r.err = b, nil }

// Err is the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Len is the number of bytes not yet read.
func (r *Reader) Len() int { return len(r.buf) }

func (r *Reader) fail() {
	if r.err == nil {
		r.err = ErrCorrupt
	}
	r.buf = nil
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// Count reads a count of items each at least min bytes long, refusing one
// the rest of the input cannot hold (so that it never sizes an allocation
// past the input).
func (r *Reader) Count(min int) int {
	n := r.Uvarint()
	if n > uint64(len(r.buf)/max(min, 1)) {
		r.fail()
		return 0
	}
	return int(n)
}

// Bytes reads a length-prefixed byte string, a copy.
func (r *Reader) Bytes() []byte {
	b := r.raw()
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Slice reads a length-prefixed byte string without copying it: the
// result shares the input (a section another reader decodes).
func (r *Reader) Slice() []byte { return r.raw() }

// String reads a length-prefixed string.
func (r *Reader) String() string { return string(r.raw()) }

func (r *Reader) raw() []byte {
	n := r.Uvarint()
	if n > uint64(len(r.buf)) {
		r.fail()
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// name reads a member name, interned.
func (r *Reader) name() string {
	b := r.raw()
	if s, ok := r.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.names) < 1<<16 {
		r.names[s] = s
	}
	return s
}

// Value reads a JSON-model value.
func (r *Reader) Value() any { return r.value(0) }

// Object reads an object value.
func (r *Reader) Object() map[string]any {
	if len(r.buf) == 0 || r.buf[0] != tagObject {
		r.fail()
		return nil
	}
	r.buf = r.buf[1:]
	return r.object(0)
}

func (r *Reader) value(depth int) any {
	if len(r.buf) == 0 || depth > maxDepth {
		r.fail()
		return nil
	}
	tag := r.buf[0]
	r.buf = r.buf[1:]
	switch tag {
	case tagNull:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagNumber:
		if len(r.buf) < 8 {
			r.fail()
			return nil
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.buf))
		r.buf = r.buf[8:]
		return f
	case tagString:
		return r.String()
	case tagArray:
		n := r.Count(1)
		a := make([]any, n)
		for i := range a {
			a[i] = r.value(depth + 1)
		}
		return a
	case tagObject:
		return r.object(depth)
	}
	r.fail()
	return nil
}

func (r *Reader) object(depth int) map[string]any {
	n := r.Count(2)
	m := make(map[string]any, n)
	for range n {
		k := r.name()
		m[k] = r.value(depth + 1)
	}
	return m
}
