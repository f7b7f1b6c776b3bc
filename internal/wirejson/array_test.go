package wirejson

import (
	"reflect"
	"testing"
)

// arrayElems walks data with parseArray, handing elem each element's text.
func arrayElems(data []byte, elem func(text []byte) bool) bool {
	return parseArray(data, func(p *jsonParser) bool {
		start := p.i
		_, ok := p.value(1)
		return ok && elem(data[start:p.i])
	})
}

func TestParseArray(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want []string // nil: not ok
	}{
		{"elements", ` [1, "a" ,{"b":[2]},null,[]] `, []string{`1`, `"a"`, `{"b":[2]}`, `null`, `[]`}},
		{"empty", `[]`, []string{}},
		{"not an array", `{"a":1}`, nil},
		{"trailing data", `[1] 2`, nil},
		{"trailing comma", `[1,]`, nil},
		{"invalid element", `[1,tru]`, nil},
		{"unterminated", `[1`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := []string{}
			ok := arrayElems([]byte(tc.data), func(text []byte) bool {
				got = append(got, string(text))
				return true
			})
			if tc.want == nil {
				if ok {
					t.Fatalf("parseArray(%q) ok, elements %q", tc.data, got)
				}
				return
			}
			if !ok || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseArray(%q) = %q, %v; want %q", tc.data, got, ok, tc.want)
			}
		})
	}
	calls := 0
	if arrayElems([]byte(`[1,2,3]`), func([]byte) bool { calls++; return false }) || calls != 1 {
		t.Fatalf("a stopping elem: %d calls, want 1 and not ok", calls)
	}
}

func TestParseObjectsText(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want []string // "|" before each element's members; nil: not ok
	}{
		{"objects", ` [ {"a":1, "b":{"c":[2]}} , {} ,{"d":"x"}] `, []string{"|", `a=1`, `b={"c":[2]}`, "|", "|", `d="x"`}},
		{"empty", `[]`, []string{}},
		{"not an object", `[{"a":1},2]`, nil},
		{"invalid member", `[{"a":tru}]`, nil},
		{"unterminated object", `[{"a":1]`, nil},
		{"trailing data", `[{}] x`, nil},
		{"not an array", `{"a":1}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := []string{}
			ok := ParseObjectsText([]byte(tc.data), func() bool {
				got = append(got, "|")
				return true
			}, func(key string, text []byte) bool {
				got = append(got, key+"="+string(text))
				return true
			})
			if tc.want == nil {
				if ok {
					t.Fatalf("ParseObjectsText(%q) ok, got %q", tc.data, got)
				}
				return
			}
			if !ok || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseObjectsText(%q) = %q, %v; want %q", tc.data, got, ok, tc.want)
			}
		})
	}
}
