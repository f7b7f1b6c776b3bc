// Package wirejson encodes and decodes the JSON of storeloop's hot path
// (records, events, replies) without reflection, producing exactly what
// encoding/json produces and handing anything unusual back to it. It is an
// optimisation only: every function has an encoding/json equivalent, and
// the tests hold the two to the same output.
package wirejson

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Append appends the JSON encoding of v to dst, byte for byte what
// json.Marshal(v) returns, and returns the extended buffer. The values a
// record holds after decoding (maps, slices, strings, float64, bool, nil)
// are encoded without reflection; anything else, and strings that need
// escaping, go through encoding/json. It fails where json.Marshal fails
// (NaN, infinities, unsupported types), with its error.
func Append(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return AppendString(dst, x), nil
	case float64:
		return appendJSONFloat(dst, x)
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendJSONObject(dst, x, Append)
	case map[string]float64:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendJSONObject(dst, x, appendJSONFloat)
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = Append(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	data, err := json.Marshal(v)
	return append(dst, data...), err
}

// appendJSONObject encodes a map as encoding/json does: keys sorted.
func appendJSONObject[V any](dst []byte, m map[string]V, value func([]byte, V) ([]byte, error)) ([]byte, error) {
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = value(dst, m[k]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// AppendString appends s quoted, as json.Marshal(s) encodes it;
// strings with characters encoding/json escapes (quotes, backslashes,
// control characters, <, >, &, non-ASCII) are left to it.
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			data, _ := json.Marshal(s) // a string always encodes
			return append(dst, data...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendJSONFloat formats f as encoding/json does for a float64.
func appendJSONFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		_, err := json.Marshal(f)
		return dst, err
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// Parse decodes data, one JSON value with optional surrounding white
// space, into what json.Unmarshal into an any produces: map[string]any,
// []any, string, float64, bool or nil. It is a fast path only: ok is false
// for input it leaves to encoding/json — anything invalid, objects with a
// repeated key, numbers out of range, nesting deeper than 100 — so a caller
// falls back to encoding/json, which decides those and words the errors.
func Parse(data []byte) (v any, ok bool) {
	p := jsonParser{data: data}
	p.space()
	if v, ok = p.value(0); !ok {
		return nil, false
	}
	p.space()
	return v, p.i == len(data)
}

// ParseObject is Parse for a body that must be one JSON object, without
// building a map for it: it calls member for each of its members in order,
// the value parsed as by Parse, and stops early when member returns
// false. key is valid only during the call. ok is false when member
// stopped or the input is left to encoding/json (see Parse), repeated
// keys at the top included only if member rejects them.
func ParseObject(data []byte, member func(key string, value any) bool) (ok bool) {
	p := jsonParser{data: data}
	return p.members(func(key string, start int) bool {
		v, ok := p.value(1)
		return ok && member(key, v)
	})
}

// ParseObjectText is ParseObject handing member each value's JSON text
// instead of its value (a view of data, valid only during the call): the
// values are checked against the JSON grammar but not built, so a caller
// builds only what it needs — with Parse, or from a number's text as
// encoding/json decodes an integer field (refusing 1.0, 1e3, out of
// range). Parse may still decline a value's text (a repeated key inside
// it, a number out of float64 range).
func ParseObjectText(data []byte, member func(key string, text []byte) bool) (ok bool) {
	p := jsonParser{data: data, check: true}
	return p.members(func(key string, start int) bool {
		_, ok := p.value(1)
		return ok && member(key, data[start:p.i])
	})
}

// members parses an object's members up to the end of the input, calling
// member with each key and the offset of its value, which member consumes.
func (p *jsonParser) members(member func(key string, start int) bool) bool {
	p.space()
	if !p.objectMembers(member) {
		return false
	}
	p.space()
	return p.i == len(p.data)
}

// objectMembers parses the object at p.i, calling member with each key and
// the offset of its value, which member consumes.
func (p *jsonParser) objectMembers(member func(key string, start int) bool) bool {
	if p.i >= len(p.data) || p.data[p.i] != '{' {
		return false
	}
	p.i++
	p.space()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
	} else {
		for {
			key, ok := p.key()
			if !ok || !member(key, p.i) {
				return false
			}
			if done, ok := p.next('}'); !ok {
				return false
			} else if done {
				break
			}
		}
	}
	return true
}

// maxParseDepth bounds Parse's recursion; deeper input falls back.
const maxParseDepth = 100

type jsonParser struct {
	data []byte
	i    int
	// check only checks the grammar: values are not built (all nil), and
	// repeated keys are not looked for.
	check bool
}

func (p *jsonParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, bool) {
	if p.i >= len(p.data) || depth > maxParseDepth {
		return nil, false
	}
	switch c := p.data[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.string()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *jsonParser) literal(word string) bool {
	if len(p.data)-p.i < len(word) || string(p.data[p.i:p.i+len(word)]) != word {
		return false
	}
	p.i += len(word)
	return true
}

func (p *jsonParser) object(depth int) (any, bool) {
	p.i++ // {
	var m map[string]any
	if !p.check {
		m = map[string]any{}
	}
	p.space()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return m, true
	}
	for {
		k, ok := p.key()
		if !ok {
			return nil, false
		}
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		if !p.check {
			if _, dup := m[k]; dup {
				return nil, false
			}
			m[strings.Clone(k)] = v
		}
		done, ok := p.next('}')
		if !ok {
			return nil, false
		}
		if done {
			return m, true
		}
	}
}

// key parses a member's key and the colon after it, up to the value. Plain
// keys are returned as views of the input (unsafe.String): the caller
// copies what it keeps.
func (p *jsonParser) key() (string, bool) {
	if p.i >= len(p.data) || p.data[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	for end := start; end < len(p.data); end++ {
		c := p.data[end]
		if c == '"' {
			p.i = end + 1
			p.space()
			if p.i >= len(p.data) || p.data[p.i] != ':' {
				return "", false
			}
			p.i++
			p.space()
			return unsafe.String(unsafe.SliceData(p.data[start:]), end-start), true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	k, ok := p.string()
	if !ok {
		return "", false
	}
	p.space()
	if p.i >= len(p.data) || p.data[p.i] != ':' {
		return "", false
	}
	p.i++
	p.space()
	return k, true
}

// next consumes the comma or the closing byte after a member or element and
// reports whether it was the closing one.
func (p *jsonParser) next(closing byte) (done, ok bool) {
	p.space()
	if p.i >= len(p.data) {
		return false, false
	}
	switch p.data[p.i] {
	case ',':
		p.i++
		p.space()
		return false, true
	case closing:
		p.i++
		return true, true
	}
	return false, false
}

func (p *jsonParser) array(depth int) (any, bool) {
	p.i++ // [
	var a []any
	if !p.check {
		a = make([]any, 0)
	}
	p.space()
	if p.i < len(p.data) && p.data[p.i] == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		if !p.check {
			a = append(a, v)
		}
		done, ok := p.next(']')
		if !ok {
			return nil, false
		}
		if done {
			return a, true
		}
	}
}

// string decodes the string at p.i. Valid UTF-8 without escapes is taken as
// it is (what encoding/json does); a string with escapes is unquoted by
// encoding/json.
func (p *jsonParser) string() (string, bool) {
	start := p.i
	p.i++ // "
	plain := true
	for p.i < len(p.data) {
		switch c := p.data[p.i]; {
		case c == '"':
			p.i++
			if plain {
				if p.check {
					return "", true
				}
				return string(p.data[start+1 : p.i-1]), true
			}
			var s string
			if json.Unmarshal(p.data[start:p.i], &s) != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			p.i += 2
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRune(p.data[p.i:])
			if r == utf8.RuneError && size == 1 {
				plain = false // invalid UTF-8: encoding/json substitutes U+FFFD
			}
			p.i += size
		}
	}
	return "", false
}

// number checks the JSON number grammar, then parses it as encoding/json
// does (strconv.ParseFloat; out of range falls back).
func (p *jsonParser) number() (any, bool) {
	start := p.i
	d := p.data
	if d[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(d) && d[p.i] == '0':
		p.i++
	case p.i < len(d) && d[p.i] >= '1' && d[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.i < len(d) && d[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, false
		}
	}
	if p.i < len(d) && (d[p.i] == 'e' || d[p.i] == 'E') {
		p.i++
		if p.i < len(d) && (d[p.i] == '+' || d[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, false
		}
	}
	if p.check {
		return nil, true
	}
	num := d[start:p.i]
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

// digits skips one or more digits and reports whether there was one.
func (p *jsonParser) digits() bool {
	start := p.i
	for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}
