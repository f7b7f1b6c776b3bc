package rulenode

import (
	"context"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestTemplate(t *testing.T) {
	vars := map[string]any{"event": map[string]any{
		"key": 7.0,
		"newRecord": map[string]any{
			"userId": "alice", "total": 2598.0, "price": 25.5, "tags": []any{"a", "b"}, "vip": true,
		},
	}}
	tests := []struct {
		name string
		yaml string
		want any
	}{
		{"typed number", "${event.newRecord.total}", 2598.0},
		{"typed int result is a float64", "${int(event.newRecord.total / 10)}", 259.0},
		{"typed bool", "${event.newRecord.vip}", true},
		{"typed list", "${event.newRecord.tags}", []any{"a", "b"}},
		{"typed map", `"${ {'id': event.key, 'who': event.newRecord.userId} }"`, map[string]any{"id": 7.0, "who": "alice"}},
		{"typed null", "${null}", nil},
		{"interpolated whole number has no fraction", "order ${event.key} of ${event.newRecord.userId}", "order 7 of alice"},
		{"interpolated fraction", "price ${event.newRecord.price}", "price 25.5"},
		{"interpolated list as JSON", "tags=${event.newRecord.tags}", `tags=["a","b"]`},
		{"interpolated bool", "${event.newRecord.vip}!", "true!"},
		{"spaces make it text", `" ${event.key}"`, " 7"},
		{"braces and quotes inside", `"${ {'a}': '}'}['a}'] }x"`, "}x"},
		{"escaped", "cost $${total}", "cost ${total}"},
		{"plain string", "hello", "hello"},
		{"yaml number stays a number", "42", 42.0},
		{"yaml bool", "true", true},
		{"quoted number is a string", `"42"`, "42"},
		{"yaml null", "~", nil},
		{"nested map", "{a: {b: '${event.key}', c: [1, '${event.newRecord.price * 2}']}}",
			map[string]any{"a": map[string]any{"b": 7.0, "c": []any{1.0, 51.0}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte("v: "+tc.yaml), &doc); err != nil {
				t.Fatalf("yaml: %v", err)
			}
			l := &loader{}
			v := l.value(doc.Content[0].Content[1], "v", rootScope())
			if len(l.errs) > 0 {
				t.Fatalf("compile: %v", l.errs)
			}
			got, err := v.Eval(context.Background(), vars)
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if !equalJSON(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestTemplateLiteral(t *testing.T) {
	v, err := compileString(rootScope(), "no expressions here")
	if err != nil {
		t.Fatal(err)
	}
	if lit, ok := v.Literal(); !ok || lit != "no expressions here" {
		t.Fatalf("Literal() = %v, %v", lit, ok)
	}
	v, err = compileString(rootScope(), "${event.key}")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Literal(); ok {
		t.Fatal("an expression is not a literal")
	}
}

func TestSplitTemplateErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"a ${b", "unterminated ${ at offset 2"},
		{"${}", "empty ${}"},
		{"${ 'x }", "unterminated"},
	}
	for _, tc := range tests {
		t.Run(tc.src, func(t *testing.T) {
			if _, err := splitTemplate(tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTemplateEvalError(t *testing.T) {
	v, err := compileString(rootScope(), "x ${event.missing}")
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Eval(context.Background(), map[string]any{"event": map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), `evaluating "event.missing"`) {
		t.Fatalf("err = %v", err)
	}
}
