package rulenode

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestNumericMixing(t *testing.T) {
	tests := []struct {
		name string
		expr string
		vars map[string]any
		want any
	}{
		{"int of double total 2598", "int(event.newRecord.total / 10)", ev(2598.0), 259.0},
		{"int of double total 25.5", "int(event.newRecord.total / 10)", ev(25.5), 2.0},
		{"int of double total 150", "int(event.newRecord.total / 10)", ev(150.0), 15.0},
		{"literal double over int", "int(2598.0 / 10)", ev(0.0), 259.0},
		{"literal int over double", "10 / 4.0", ev(0.0), 2.5},
		{"double times int", "event.newRecord.total * 2", ev(25.5), 51.0},
		{"int plus double", "1 + event.newRecord.total", ev(1.5), 2.5},
		{"double minus int", "event.newRecord.total - 1", ev(1.5), 0.5},
		{"int modulo int stays int", "7 % 3", ev(0.0), 1.0},
		{"double modulo int", "event.newRecord.total % 4", ev(10.0), 2.0},
		{"int division stays integral", "7 / 2", ev(0.0), 3.0},
		{"compare double with int", "event.newRecord.total > 1", ev(1.5), true},
		{"compare int with double", "int(event.newRecord.total) < 1.5", ev(1.2), true},
		{"equal double and int", "event.newRecord.total == 150", ev(150.0), true},
		{"string concatenation unaffected", "'a' + 'b'", ev(0.0), "ab"},
		{"list concatenation unaffected", "[1] + [2]", ev(0.0), []any{1.0, 2.0}},
		{"math floor", "math.floor(event.newRecord.total / 10)", ev(25.5), 2.0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := compileExpr(rootScope(), tc.expr, false)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := p.eval(context.Background(), tc.vars)
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if !equalJSON(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func ev(total float64) map[string]any {
	return map[string]any{"event": map[string]any{"newRecord": map[string]any{"total": total}}}
}

func TestCostLimit(t *testing.T) {
	p, err := compileExpr(rootScope(),
		"event.l.all(a, event.l.all(b, event.l.all(c, a + b + c >= 0)))", true)
	if err != nil {
		t.Fatal(err)
	}
	l := make([]any, 500)
	for i := range l {
		l[i] = float64(i)
	}
	_, err = p.evalBool(context.Background(), map[string]any{"event": map[string]any{"l": l}})
	if !errors.Is(err, ErrCostLimit) || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("err = %v, want ErrCostLimit", err)
	}
}

func TestEvalHonoursContext(t *testing.T) {
	p, err := compileExpr(rootScope(), "event.l.all(a, event.l.all(b, a + b >= 0))", true)
	if err != nil {
		t.Fatal(err)
	}
	l := make([]any, 300)
	for i := range l {
		l[i] = float64(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.evalBool(ctx, map[string]any{"event": map[string]any{"l": l}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestToJSONRejectsNonJSON(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"1.0 / 0.0", "not a finite number"},
		{"b'x'", "has no JSON form"},
		{"{1: 2}", "want string"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			p, err := compileExpr(rootScope(), tc.expr, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.eval(context.Background(), map[string]any{"event": map[string]any{}}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
