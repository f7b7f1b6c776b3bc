package wirejson_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"nil", nil},
		{"record", events.Record{"b": 1.0, "a": "x", "c": true, "d": nil, "_version": 2.0}},
		{"empty record", events.Record{}},
		{"nil record", events.Record(nil)},
		{"nested", map[string]any{"list": []any{1.0, "two", []any{}, map[string]any{"z": false}}, "m": map[string]any{}}},
		{"nil slice", []any(nil)},
		{"floats", []any{0.0, math.Copysign(0, -1), 1.5, -3.25, 1e21, 1e20, 1e-6, 1e-7, 123456789.123, 5e-324, math.MaxFloat64, 1e-9}},
		{"ints", []any{1, -7, int64(1) << 60}},
		{"escaped strings", []any{`a"b`, `back\slash`, "<tag>&", "tab\there", "nl\n", "\x00\x1f", "\x7f", "héllo", "\u2028\u2029", "bad\xffutf8"}},
		{"escaped keys", map[string]any{"<k>": 1.0, "é": 2.0, `"`: 3.0}},
		{"increments", map[string]float64{"b": 2, "a": -1.5}},
		{"other types fall back", []any{int8(3), float32(1.5), struct {
			A int `json:"a"`
		}{7}, json.RawMessage(`{"x": 1}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := wirejson.Append([]byte("prefix:"), tc.v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if string(got) != "prefix:"+string(want) {
				t.Errorf("Append = %s, want prefix:%s", got, want)
			}
		})
	}
}

func TestAppendJSONFailsLikeEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"NaN", events.Record{"n": math.NaN()}},
		{"infinity", []any{math.Inf(1)}},
		{"infinite increment", map[string]float64{"n": math.Inf(-1)}},
		{"channel", []any{make(chan int)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, want := json.Marshal(tc.v)
			_, err := wirejson.Append(nil, tc.v)
			if err == nil || want == nil || err.Error() != want.Error() {
				t.Errorf("Append error %v, json.Marshal error %v", err, want)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		wantOK bool
	}{
		{"object", `{"a":1,"b":"x","c":[true,false,null],"d":{"e":-0.5e3}}`, true},
		{"white space", " \t\n{ \"a\" : [ 1 , 2 ] }\r\n", true},
		{"empty containers", `{"a":{},"b":[]}`, true},
		{"escapes", `{"a\"b":"x\u00e9\n\ud83d\ude00"}`, true},
		{"utf8", `{"é":"日本"}`, true},
		{"invalid utf8 is substituted", "{\"a\":\"\xff\"}", true},
		{"scalar", `12.5`, true},
		{"duplicate key", `{"a":1,"a":2}`, false},
		{"trailing data", `{} {}`, false},
		{"trailing comma", `{"a":1,}`, false},
		{"control character", "\"a\x01\"", false},
		{"leading zero", `01`, false},
		{"bare minus", `-`, false},
		{"number out of range", `1e999`, false},
		{"unterminated", `{"a":"b`, false},
		{"bad literal", `tru`, false},
		{"literal with tail", `nullx`, false},
		{"single quotes", `{'a':1}`, false},
		{"empty", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := wirejson.Parse([]byte(tc.in))
			if ok != tc.wantOK {
				t.Fatalf("Parse(%q) ok = %v, want %v", tc.in, ok, tc.wantOK)
			}
			if !ok {
				return
			}
			var want any
			if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse = %#v, want %#v", got, want)
			}
		})
	}
}

func TestParseJSONDepthFallsBack(t *testing.T) {
	deep := bytes.Repeat([]byte("["), 150)
	deep = append(deep, bytes.Repeat([]byte("]"), 150)...)
	if _, ok := wirejson.Parse(deep); ok {
		t.Fatal("Parse accepted 150 levels of nesting, want a fallback")
	}
}

// FuzzParseJSON checks the fast path against encoding/json: whatever
// Parse accepts, json.Unmarshal decodes to the same value, and
// Append encodes that value as json.Marshal does.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,null,"x"]}`, `"\u00e9\\"`, `-1.5e-7`, `{"a":{"b":{}}}`, "\"\xff\"", `[1,2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := wirejson.Parse(data)
		if !ok {
			return
		}
		var want any
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("Parse accepted %q, json.Unmarshal: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Parse(%q) = %#v, want %#v", data, got, want)
		}
		enc, err := wirejson.Append(nil, got)
		wantEnc, wantErr := json.Marshal(want)
		if (err == nil) != (wantErr == nil) || !bytes.Equal(enc, wantEnc) {
			t.Fatalf("Append = %s, %v; json.Marshal = %s, %v", enc, err, wantEnc, wantErr)
		}
	})
}

func TestParseJSONObject(t *testing.T) {
	type member struct {
		Key   string
		Value any
	}
	for _, tc := range []struct {
		name   string
		in     string
		stopAt string // member returns false for this key
		want   []member
		wantOK bool
	}{
		{"members in order", ` {"b":1,"a":{"x":[true]}} `, "", []member{{"b", 1.0}, {"a", map[string]any{"x": []any{true}}}}, true},
		{"empty", `{}`, "", nil, true},
		{"escaped key", `{"a\u0062":null}`, "", []member{{"ab", nil}}, true},
		{"repeated key is the caller's", `{"a":1,"a":2}`, "", []member{{"a", 1.0}, {"a", 2.0}}, true},
		{"stopped", `{"a":1,"b":2,"c":3}`, "b", []member{{"a", 1.0}, {"b", 2.0}}, false},
		{"not an object", `[1]`, "", nil, false},
		{"trailing data", `{"a":1}x`, "", []member{{"a", 1.0}}, false},
		{"missing colon", `{"a" 1}`, "", nil, false},
		{"invalid value", `{"a":tru}`, "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []member
			ok := wirejson.ParseObject([]byte(tc.in), func(key string, v any) bool {
				got = append(got, member{string(bytes.Clone([]byte(key))), v})
				return key != tc.stopAt
			})
			if ok != tc.wantOK || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseObject(%q) = %v, members %#v; want %v, %#v", tc.in, ok, got, tc.wantOK, tc.want)
			}
		})
	}
}

func TestParseJSONKeysDoNotAliasInput(t *testing.T) {
	data := []byte(`{"key":{"inner":1}}`)
	v, ok := wirejson.Parse(data)
	if !ok {
		t.Fatal("Parse declined")
	}
	copy(data, bytes.Repeat([]byte("x"), len(data)))
	want := map[string]any{"key": map[string]any{"inner": 1.0}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("after overwriting the input, value = %#v, want %#v", v, want)
	}
}

func TestParseObjectTextIsTheValuesText(t *testing.T) {
	in := ` { "n" : 1.50e3 , "s":"a\"b", "o" : {"x": [1, 2]},"z":null } `
	var got []string
	ok := wirejson.ParseObjectText([]byte(in), func(key string, text []byte) bool {
		got = append(got, key+"="+string(text))
		return true
	})
	want := []string{`n=1.50e3`, `s="a\"b"`, `o={"x": [1, 2]}`, `z=null`}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseObjectText = %v, %q; want true, %q", ok, got, want)
	}
}

// ParseObjectText checks the grammar of the values it does not build.
func TestParseObjectTextChecksValues(t *testing.T) {
	for _, in := range []string{`{"a":[1,}`, `{"a":{"b" 1}}`, `{"a":"\q"}`, `{"a":01}`, `{"a":"x` + "\n" + `"}`, `{"a":tru}`, `{"a":1}x`} {
		if wirejson.ParseObjectText([]byte(in), func(string, []byte) bool { return true }) {
			t.Errorf("ParseObjectText accepted %s", in)
		}
	}
}
