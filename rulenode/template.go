package rulenode

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Value is a compiled action value: a YAML literal in which a string that
// is exactly "${expr}" stands for the typed result of the CEL expression,
// "${expr}" inside a longer string is interpolated as text, and "$${" is a
// literal "${". Maps and lists are templated element by element.
type Value struct {
	kind  valueKind
	lit   any       // valueLiteral: nil, bool, float64 or string
	expr  *program  // valueExpr
	parts []tplPart // valueText
	keys  []string  // valueMap, in source order
	elems []*Value  // valueMap (parallel to keys) and valueList
}

type valueKind int

const (
	valueLiteral valueKind = iota
	valueExpr
	valueText
	valueMap
	valueList
)

// tplPart is one piece of an interpolated string: text, or an expression.
type tplPart struct {
	text string
	expr *program
}

// Literal reports the value when it contains no expression at all.
func (v *Value) Literal() (any, bool) {
	if v.kind != valueLiteral {
		return nil, false
	}
	return v.lit, true
}

// String renders the value as it was written: expressions as ${expr},
// maps as {k: v}, lists as [a, b], literals as text (strings unquoted).
func (v *Value) String() string {
	switch v.kind {
	case valueLiteral:
		if v.lit == nil {
			return "null"
		}
		s, _ := formatText(v.lit)
		if _, ok := v.lit.(string); ok {
			s = strings.ReplaceAll(s, "${", "$${")
		}
		return s
	case valueExpr:
		return "${" + v.expr.src + "}"
	case valueText:
		var b strings.Builder
		for _, p := range v.parts {
			if p.expr == nil {
				b.WriteString(strings.ReplaceAll(p.text, "${", "$${"))
			} else {
				b.WriteString("${" + p.expr.src + "}")
			}
		}
		return b.String()
	case valueMap:
		items := make([]string, len(v.keys))
		for i, k := range v.keys {
			items[i] = k + ": " + v.elems[i].String()
		}
		return "{" + strings.Join(items, ", ") + "}"
	default:
		items := make([]string, len(v.elems))
		for i, e := range v.elems {
			items[i] = e.String()
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
}

// Eval computes the value with the given CEL variables. The result is
// JSON-like: nil, bool, float64, string, []any or map[string]any.
// Expression failures are *EvalError (without rule and path).
func (v *Value) Eval(ctx context.Context, vars map[string]any) (any, error) {
	switch v.kind {
	case valueLiteral:
		return v.lit, nil
	case valueExpr:
		out, err := v.expr.eval(ctx, vars)
		if err != nil {
			return nil, &EvalError{Expr: v.expr.src, Err: err}
		}
		return out, nil
	case valueText:
		var b strings.Builder
		for _, p := range v.parts {
			if p.expr == nil {
				b.WriteString(p.text)
				continue
			}
			out, err := p.expr.eval(ctx, vars)
			if err != nil {
				return nil, &EvalError{Expr: p.expr.src, Err: err}
			}
			s, err := formatText(out)
			if err != nil {
				return nil, &EvalError{Expr: p.expr.src, Err: err}
			}
			b.WriteString(s)
		}
		return b.String(), nil
	case valueMap:
		out := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			e, err := v.elems[i].Eval(ctx, vars)
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	default:
		out := make([]any, len(v.elems))
		for i, e := range v.elems {
			x, err := e.Eval(ctx, vars)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
}

// formatText renders an interpolated result: strings as they are, whole
// numbers without a fraction, anything else as JSON.
func formatText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// compileString compiles a string scalar of a template.
func compileString(s *scope, src string) (*Value, error) {
	parts, err := splitTemplate(src)
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 && parts[0].isExpr {
		p, err := compileExpr(s, parts[0].text, false)
		if err != nil {
			return nil, err
		}
		return &Value{kind: valueExpr, expr: p}, nil
	}
	if len(parts) == 0 || len(parts) == 1 {
		text := ""
		if len(parts) == 1 {
			text = parts[0].text
		}
		return &Value{kind: valueLiteral, lit: text}, nil
	}
	v := &Value{kind: valueText}
	for _, part := range parts {
		if !part.isExpr {
			v.parts = append(v.parts, tplPart{text: part.text})
			continue
		}
		p, err := compileExpr(s, part.text, false)
		if err != nil {
			return nil, err
		}
		v.parts = append(v.parts, tplPart{expr: p})
	}
	return v, nil
}

type rawPart struct {
	text   string
	isExpr bool
}

// splitTemplate cuts a string into text and ${expr} parts. The end of an
// expression is the "}" that closes its "${", outside CEL string literals,
// so maps and strings containing braces work inside expressions.
func splitTemplate(src string) ([]rawPart, error) {
	var parts []rawPart
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, rawPart{text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(src); {
		switch {
		case strings.HasPrefix(src[i:], "$${"):
			text.WriteString("${")
			i += 3
		case strings.HasPrefix(src[i:], "${"):
			end, err := exprEnd(src, i+2)
			if err != nil {
				return nil, err
			}
			expr := strings.TrimSpace(src[i+2 : end])
			if expr == "" {
				return nil, fmt.Errorf("empty ${} at offset %d", i)
			}
			flush()
			parts = append(parts, rawPart{text: expr, isExpr: true})
			i = end + 1
		default:
			text.WriteByte(src[i])
			i++
		}
	}
	flush()
	return parts, nil
}

// exprEnd returns the index of the "}" closing an expression starting at i.
func exprEnd(src string, start int) (int, error) {
	depth := 0
	var quote byte
	for i := start; i < len(src); i++ {
		c := src[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return i, nil
			}
			depth--
		}
	}
	return 0, fmt.Errorf("unterminated ${ at offset %d", start-2)
}
