package rulenode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/decls"
	celenv "cel.dev/cel-go/common/env"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/stdlib"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Limits on expressions, so that a hostile rule file cannot exhaust a rule
// node.
const (
	// MaxExprLen is the longest CEL expression accepted, in bytes.
	MaxExprLen = 4 << 10
	// CostLimit is the CEL runtime cost after which an evaluation stops.
	CostLimit = 1_000_000
	// interruptCheckFrequency is how many comprehension iterations run
	// between two checks of the context.
	interruptCheckFrequency = 100
)

// EventVar is the CEL variable holding the triggering event.
const EventVar = "event"

// ErrCostLimit is wrapped by an *EvalError when an expression ran past
// CostLimit.
var ErrCostLimit = errors.New("expression cost limit exceeded")

// EvalError is a failure to evaluate one expression of a rule.
type EvalError struct {
	RuleID string
	Path   string // action path ("" for the when condition)
	Expr   string
	Err    error
}

func (e *EvalError) Error() string {
	where := "when"
	if e.Path != "" {
		where = "action " + e.Path
	}
	return fmt.Sprintf("rule %q %s: evaluating %q: %v", e.RuleID, where, e.Expr, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// mixedOps are the arithmetic operators that accept an int and a double
// together (see the package documentation, "Numbers").
var mixedOps = []string{operators.Add, operators.Subtract, operators.Multiply, operators.Divide, operators.Modulo}

// baseEnv is the CEL environment every expression starts from: the standard
// library with mixed int/double arithmetic, the strings and math extensions,
// and the event variable. Loop variables are added per forEach scope.
var baseEnv = func() *cel.Env {
	subset := celenv.NewLibrarySubset()
	for _, op := range mixedOps {
		subset.ExcludeFunctions = append(subset.ExcludeFunctions, &celenv.Function{Name: op})
	}
	fns, err := mixedArithmetic()
	if err != nil {
		panic(err)
	}
	env, err := cel.NewCustomEnv(
		cel.StdLib(cel.StdLibSubset(subset)),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		ext.Math(),
		cel.FunctionDecls(fns...),
		cel.Variable(EventVar, cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		panic(err)
	}
	return env
}()

// mixedArithmetic redeclares the arithmetic operators the standard library
// was built without: every standard overload is kept, (double, int) and
// (int, double) overloads returning double are added, as is a double
// modulo, and one binding promotes an int operand to double whenever the
// other is a double. The binding has to be a singleton because operands
// typed dyn (every record field) are dispatched at run time by name.
func mixedArithmetic() ([]*decls.FunctionDecl, error) {
	std := map[string]*decls.FunctionDecl{}
	for _, fn := range stdlib.Functions() {
		std[fn.Name()] = fn
	}
	var out []*decls.FunctionDecl
	for _, op := range mixedOps {
		extra := [][2]*types.Type{{types.DoubleType, types.IntType}, {types.IntType, types.DoubleType}}
		if op == operators.Modulo {
			extra = append(extra, [2]*types.Type{types.DoubleType, types.DoubleType})
		}
		opts := []decls.FunctionOpt{decls.SingletonBinaryBinding(mixedBinary(op))}
		for _, args := range extra {
			id := fmt.Sprintf("storeloop_%s_%s_%s", opName(op), args[0], args[1])
			opts = append(opts, decls.Overload(id, []*types.Type{args[0], args[1]}, types.DoubleType))
		}
		fn, err := decls.NewFunction(op, opts...)
		if err != nil {
			return nil, err
		}
		for _, o := range std[op].OverloadDecls() {
			if err := fn.AddOverload(o); err != nil {
				return nil, err
			}
		}
		out = append(out, fn)
	}
	return out, nil
}

func opName(op string) string {
	switch op {
	case operators.Add:
		return "add"
	case operators.Subtract:
		return "subtract"
	case operators.Multiply:
		return "multiply"
	case operators.Divide:
		return "divide"
	}
	return "modulo"
}

// mixedBinary implements op after promoting an int beside a double.
func mixedBinary(op string) func(lhs, rhs ref.Val) ref.Val {
	return func(lhs, rhs ref.Val) ref.Val {
		lhs, rhs = promote(lhs, rhs)
		switch op {
		case operators.Add:
			if a, ok := lhs.(traits.Adder); ok {
				return a.Add(rhs)
			}
		case operators.Subtract:
			if a, ok := lhs.(traits.Subtractor); ok {
				return a.Subtract(rhs)
			}
		case operators.Multiply:
			if a, ok := lhs.(traits.Multiplier); ok {
				return a.Multiply(rhs)
			}
		case operators.Divide:
			if a, ok := lhs.(traits.Divider); ok {
				return a.Divide(rhs)
			}
		case operators.Modulo:
			if l, ok := lhs.(types.Double); ok {
				if r, ok := rhs.(types.Double); ok {
					return types.Double(math.Mod(float64(l), float64(r)))
				}
			}
			if a, ok := lhs.(traits.Modder); ok {
				return a.Modulo(rhs)
			}
		}
		return types.MaybeNoSuchOverloadErr(lhs)
	}
}

func promote(lhs, rhs ref.Val) (ref.Val, ref.Val) {
	_, ld := lhs.(types.Double)
	_, rd := rhs.(types.Double)
	if l, ok := lhs.(types.Int); ok && rd {
		return types.Double(l), rhs
	}
	if r, ok := rhs.(types.Int); ok && ld {
		return lhs, types.Double(r)
	}
	return lhs, rhs
}

// scope is the CEL environment at one place of a rule: the base
// environment plus the loop variables of the enclosing forEach actions.
type scope struct {
	env  *cel.Env
	vars []string // loop variables, outermost first
}

func rootScope() *scope { return &scope{env: baseEnv} }

// with returns the scope inside a forEach that binds name.
func (s *scope) with(name string) (*scope, error) {
	env, err := s.env.Extend(cel.Variable(name, cel.DynType))
	if err != nil {
		return nil, err
	}
	return &scope{env: env, vars: append(append([]string(nil), s.vars...), name)}, nil
}

func (s *scope) has(name string) bool {
	if name == EventVar {
		return true
	}
	for _, v := range s.vars {
		if v == name {
			return true
		}
	}
	return false
}

// program is one compiled expression.
type program struct {
	src  string
	prog cel.Program
}

// compileExpr compiles src in the scope; wantBool demands a boolean (or
// dyn, checked at run time) result.
func compileExpr(s *scope, src string, wantBool bool) (*program, error) {
	if len(src) > MaxExprLen {
		return nil, fmt.Errorf("expression is %d bytes, more than %d", len(src), MaxExprLen)
	}
	ast, iss := s.env.Compile(src)
	if iss.Err() != nil {
		// One line per file error: the column and CEL's message, without
		// CEL's multi-line source excerpt.
		msgs := make([]string, 0, len(iss.Errors()))
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("column %d: %s", e.Location.Column()+1, e.Message))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	if wantBool {
		if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
			return nil, fmt.Errorf("expression is %s, want bool", t)
		}
	}
	p, err := s.env.Program(ast,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(interruptCheckFrequency))
	if err != nil {
		return nil, err
	}
	return &program{src: src, prog: p}, nil
}

// eval runs the program and converts the result to a JSON-like Go value.
func (p *program) eval(ctx context.Context, vars map[string]any) (any, error) {
	out, _, err := p.prog.ContextEval(ctx, vars)
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			return nil, fmt.Errorf("%w (limit %d)", ErrCostLimit, CostLimit)
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	return toJSON(out)
}

// evalBool runs a boolean program.
func (p *program) evalBool(ctx context.Context, vars map[string]any) (bool, error) {
	v, err := p.eval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("result is %s, want bool", jsonTypeName(v))
	}
	return b, nil
}

// toJSON converts a CEL value into what encoding/json produces for the
// same data: nil, bool, float64, string, []any and map[string]any.
func toJSON(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(x), nil
	case types.Int:
		return float64(x), nil
	case types.Uint:
		return float64(x), nil
	case types.Double:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("result %v is not a finite number", f)
		}
		return f, nil
	case types.String:
		return string(x), nil
	case traits.Mapper:
		out := map[string]any{}
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v is %s, want string", k, k.Type())
			}
			e, err := toJSON(x.Get(k))
			if err != nil {
				return nil, err
			}
			out[string(ks)] = e
		}
		return out, nil
	case traits.Lister:
		n, ok := x.Size().(types.Int)
		if !ok {
			return nil, fmt.Errorf("list of unknown size")
		}
		out := make([]any, 0, int(n))
		for i := types.Int(0); i < n; i++ {
			e, err := toJSON(x.Get(i))
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case *types.Err:
		return nil, x
	}
	return nil, fmt.Errorf("result of type %s has no JSON form", v.Type())
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "list"
	case map[string]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

// withVar returns a copy of vars with name bound to v.
func withVar(vars map[string]any, name string, v any) map[string]any {
	out := make(map[string]any, len(vars)+1)
	for k, x := range vars {
		out[k] = x
	}
	out[name] = v
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
