package rulenode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/storeloop/storeloop/events"
)

// LoadError is one problem of a rule file. It matches events.ErrValidation
// under errors.Is.
type LoadError struct {
	File   string
	RuleID string // "" outside a rule or when the rule has no valid id
	Field  string // path of the field, e.g. "then[0].upsert.key"
	Line   int    // 1-based; 0 when unknown
	Reason string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.RuleID != "" {
		fmt.Fprintf(&b, "rule %q: ", e.RuleID)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is makes every load error a validation error.
func (e *LoadError) Is(target error) bool { return events.ErrValidation.Is(target) }

// LoadErrors is every problem found in one rule file, in file order.
type LoadErrors []*LoadError

func (es LoadErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each *LoadError to errors.Is and errors.As.
func (es LoadErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxLoadErrors bounds the report of a file that is wrong everywhere.
const maxLoadErrors = 50

// maxYAMLDepth bounds the nesting of a rule file.
const maxYAMLDepth = 64

// LoadFile reads and compiles a rule file.
func LoadFile(path string) (*RuleSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Load(f, path)
}

// Load reads and compiles a YAML rule set; file names it in errors. All
// problems found are returned together as LoadErrors.
func Load(r io.Reader, file string) (*RuleSet, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	l := &loader{file: file}
	if len(data) > MaxFileSize {
		l.errf(nil, "", "file is larger than %d bytes", MaxFileSize)
		return nil, l.errs
	}
	root := l.parse(data)
	if root == nil {
		return nil, l.errs
	}
	rs := l.ruleSet(root)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	rs.File = file
	return rs, nil
}

type loader struct {
	file    string
	errs    LoadErrors
	ruleID  string // id of the rule being compiled
	actions int    // actions of the rule so far
}

func (l *loader) errf(n *yaml.Node, field, format string, args ...any) {
	if len(l.errs) >= maxLoadErrors {
		return
	}
	e := &LoadError{File: l.file, RuleID: l.ruleID, Field: field, Reason: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	l.errs = append(l.errs, e)
}

// parse decodes the single YAML document of data and checks its shape.
func (l *loader) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errf(nil, "", "the file is empty")
		} else {
			l.errf(nil, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		l.errf(&extra, "", "a rule file holds one YAML document")
		return nil
	}
	if len(doc.Content) != 1 {
		l.errf(&doc, "", "the file is empty")
		return nil
	}
	if !l.plain(doc.Content[0], 0) {
		return nil
	}
	return doc.Content[0]
}

// plain rejects anchors and aliases (whose expansion a hostile file could
// make exponential) and excessive nesting.
func (l *loader) plain(n *yaml.Node, depth int) bool {
	switch {
	case depth > maxYAMLDepth:
		l.errf(n, "", "nested more than %d levels deep", maxYAMLDepth)
		return false
	case n.Kind == yaml.AliasNode || n.Anchor != "":
		l.errf(n, "", "YAML anchors and aliases are not supported")
		return false
	}
	for _, c := range n.Content {
		if !l.plain(c, depth+1) {
			return false
		}
	}
	return true
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func index(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return n.ShortTag()
}

// fields returns the values of a mapping by key, reporting keys that are
// not allowed or repeated.
func (l *loader) fields(n *yaml.Node, field string, allowed ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		l.errf(n, field, "want a mapping, got %s", kindName(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			l.errf(k, field, "keys must be strings")
		case !slices.Contains(allowed, k.Value):
			l.errf(k, join(field, k.Value), "unknown field (allowed: %s)", strings.Join(allowed, ", "))
		case out[k.Value] != nil:
			l.errf(k, join(field, k.Value), "duplicate field")
		default:
			out[k.Value] = v
		}
	}
	return out
}

// str returns a string scalar.
func (l *loader) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		l.errf(n, field, "want a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (l *loader) bucket(n *yaml.Node, field string) string {
	b, ok := l.str(n, field)
	if ok && !events.ValidBucketName(b) {
		l.errf(n, field, "%q is not a valid bucket name (1-%d of A-Z a-z 0-9 _ -)", b, events.MaxBucketNameLen)
	}
	return b
}

func (l *loader) ruleSet(root *yaml.Node) *RuleSet {
	f := l.fields(root, "", append([]string{"name", "maxHop", "rules"}, budgetKeys...)...)
	if f == nil {
		return nil
	}
	rs := &RuleSet{MaxHop: DefaultMaxHop}
	if n := f["name"]; n == nil {
		l.errf(root, "name", "required")
	} else if name, ok := l.str(n, "name"); ok {
		if !ruleSetNameRE.MatchString(name) {
			l.errf(n, "name", "%q is not a valid rule-set name (1-64 of A-Z a-z 0-9 _ -): it names the durable consumer", name)
		}
		rs.Name = name
	}
	if n := f["maxHop"]; n != nil {
		var hop int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&hop) != nil || hop < 1 || hop > MaxHopLimit {
			l.errf(n, "maxHop", "want a whole number from 1 to %d", MaxHopLimit)
		}
		rs.MaxHop = hop
	}
	rs.Budget = l.budget(f, "")
	n := f["rules"]
	if n == nil {
		l.errf(root, "rules", "required")
		return rs
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errf(n, "rules", "want a non-empty list of rules")
		return rs
	}
	if len(n.Content) > MaxRules {
		l.errf(n, "rules", "%d rules, more than %d", len(n.Content), MaxRules)
		return rs
	}
	seen := map[string]int{}
	for i, rn := range n.Content {
		if r := l.rule(rn, i, seen); r != nil {
			rs.Rules = append(rs.Rules, r)
		}
	}
	return rs
}

// ruleIdentity checks a rule's id and returns it when it is valid and new.
func (l *loader) ruleIdentity(n *yaml.Node, base string, seen map[string]int) string {
	id, ok := l.str(n, join(base, "id"))
	switch {
	case !ok:
	case !ruleIDRE.MatchString(id):
		l.errf(n, join(base, "id"), "%q is not a valid rule id (1-128 of A-Z a-z 0-9 _ . : -)", id)
	case seen[id] != 0:
		l.errf(n, join(base, "id"), "duplicate rule id %q (first on line %d)", id, seen[id])
	default:
		seen[id] = n.Line
		return id
	}
	return ""
}

func (l *loader) rule(n *yaml.Node, i int, seen map[string]int) *Rule {
	l.ruleID, l.actions = "", 0
	defer func() { l.ruleID = "" }()
	base := index("rules", i)
	r := &Rule{}
	// The id comes first so that every other error can name the rule.
	if n.Kind == yaml.MappingNode {
		for k := 0; k+1 < len(n.Content); k += 2 {
			if n.Content[k].Value == "id" {
				r.ID = l.ruleIdentity(n.Content[k+1], base, seen)
				break
			}
		}
	}
	if r.ID != "" {
		l.ruleID, base = r.ID, ""
	}
	f := l.fields(n, base, append([]string{"id", "on", "when", "noLoop", "then", "absence", "count", "sequence"}, budgetKeys...)...)
	if f == nil {
		return nil
	}
	r.Budget = l.budget(f, base)
	if f["id"] == nil {
		l.errf(n, join(base, "id"), "required")
	}
	sc := rootScope()
	if r.Temporal = l.trigger(n, f, base); r.Temporal != nil {
		sc = matchScope
		for _, st := range r.Temporal.Steps {
			r.On = append(r.On, st.On...)
		}
	} else if on := f["on"]; on == nil {
		l.errf(n, join(base, "on"), "required (or one of absence, count, sequence)")
	} else {
		r.On = l.filters(on, join(base, "on"), false)
	}
	if wn := f["when"]; wn != nil {
		if src, ok := l.str(wn, join(base, "when")); ok {
			p, err := compileExpr(sc, src, true)
			if err != nil {
				l.errf(wn, join(base, "when"), "%v", err)
			}
			r.When, r.when = src, p
		}
	}
	if nl := f["noLoop"]; nl != nil {
		if nl.Kind != yaml.ScalarNode || nl.ShortTag() != "!!bool" || nl.Decode(&r.NoLoop) != nil {
			l.errf(nl, join(base, "noLoop"), "want true or false, got %s", kindName(nl))
		}
	}
	if tn := f["then"]; tn == nil {
		l.errf(n, join(base, "then"), "required")
	} else {
		r.Then = l.actionList(tn, join(base, "then"), sc, 0, false)
	}
	return r
}

// filters reads a non-empty list of subject filters, or with one also a
// single filter as a string.
func (l *loader) filters(n *yaml.Node, field string, one bool) []string {
	if one && n.Kind == yaml.ScalarNode {
		n = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}, Line: n.Line}
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errf(n, field, "want a non-empty list of subject filters")
		return nil
	}
	var out []string
	for j, sn := range n.Content {
		f := index(field, j)
		if one && len(n.Content) == 1 {
			f = field
		}
		if s, ok := l.str(sn, f); ok {
			if err := validFilter(s); err != nil {
				l.errf(sn, f, "%v", err)
			}
			out = append(out, s)
		}
	}
	return out
}

var (
	writeKinds = []string{string(KindInsert), string(KindUpdate), string(KindUpsert), string(KindDelete)}
	txKinds    = append(slices.Clone(writeKinds), string(KindForEach))
	allKinds   = append(slices.Clone(txKinds), string(KindTx), string(KindPublish), string(KindLog))
)

// actionList compiles a list of actions. depth counts enclosing forEach;
// inTx restricts the kinds to those a transaction can hold.
func (l *loader) actionList(n *yaml.Node, field string, sc *scope, depth int, inTx bool) []*Action {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errf(n, field, "want a non-empty list of actions")
		return nil
	}
	var out []*Action
	for i, an := range n.Content {
		if a := l.action(an, index(field, i), sc, depth, inTx); a != nil {
			out = append(out, a)
		}
	}
	return out
}

func (l *loader) action(n *yaml.Node, field string, sc *scope, depth int, inTx bool) *Action {
	kinds := allKinds
	if inTx {
		kinds = txKinds
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		l.errf(n, field, "an action is a mapping with exactly one of: %s", strings.Join(kinds, ", "))
		return nil
	}
	if l.actions++; l.actions == MaxActions+1 {
		l.errf(n, field, "more than %d actions in one rule", MaxActions)
	}
	kn, body := n.Content[0], n.Content[1]
	kind := kn.Value
	if kn.Kind != yaml.ScalarNode || !slices.Contains(kinds, kind) {
		if inTx && slices.Contains(allKinds, kind) {
			l.errf(kn, field, "%s cannot be inside a tx (allowed: %s)", kind, strings.Join(kinds, ", "))
		} else {
			l.errf(kn, field, "unknown action %q (allowed: %s)", kind, strings.Join(kinds, ", "))
		}
		return nil
	}
	field = join(field, kind)
	a := &Action{Kind: ActionKind(kind), Line: n.Line}
	switch a.Kind {
	case KindInsert:
		f := l.fields(body, field, "bucket", "record", "onConflict")
		a.Bucket = l.required(f, body, field, "bucket", l.bucket)
		a.Record = l.requiredValue(f, body, field, "record", sc, l.mapValue)
		l.onConflict(a, f, field, inTx)
	case KindUpdate:
		f := l.fields(body, field, "bucket", "key", "changes", "increment", "expectVersion", "onConflict", "onMissing")
		a.Bucket = l.required(f, body, field, "bucket", l.bucket)
		a.Key = l.requiredValue(f, body, field, "key", sc, l.keyValue)
		a.Changes = l.optionalValue(f, field, "changes", sc, l.mapValue)
		a.Increment = l.optionalValue(f, field, "increment", sc, l.mapValue)
		if f != nil && f["changes"] == nil && f["increment"] == nil {
			l.errf(body, field, "changes or increment is required")
		}
		a.ExpectVersion = l.optionalValue(f, field, "expectVersion", sc, l.versionValue)
		l.onConflict(a, f, field, inTx)
		l.onMissing(a, f, field, inTx)
	case KindUpsert:
		f := l.fields(body, field, "bucket", "key", "record", "increment")
		a.Bucket = l.required(f, body, field, "bucket", l.bucket)
		a.Key = l.requiredValue(f, body, field, "key", sc, l.keyValue)
		a.Record = l.optionalValue(f, field, "record", sc, l.mapValue)
		a.Increment = l.optionalValue(f, field, "increment", sc, l.mapValue)
	case KindDelete:
		f := l.fields(body, field, "bucket", "key", "expectVersion", "onConflict")
		a.Bucket = l.required(f, body, field, "bucket", l.bucket)
		a.Key = l.requiredValue(f, body, field, "key", sc, l.keyValue)
		a.ExpectVersion = l.optionalValue(f, field, "expectVersion", sc, l.versionValue)
		l.onConflict(a, f, field, inTx)
	case KindTx:
		l.tx(a, body, field, sc, depth)
	case KindForEach:
		l.forEach(a, body, field, sc, depth, inTx)
	case KindPublish:
		f := l.fields(body, field, "subject", "data")
		a.Subject = l.requiredValue(f, body, field, "subject", sc, l.stringValue)
		if lit, ok := literal(a.Subject); ok {
			if err := validPublishSubject(lit.(string)); err != nil {
				l.errf(f["subject"], join(field, "subject"), "%v", err)
			}
		}
		a.Data = l.optionalValue(f, field, "data", sc, l.value)
	case KindLog:
		f := l.fields(body, field, "message", "level")
		a.Message = l.requiredValue(f, body, field, "message", sc, l.stringValue)
		a.Level = slog.LevelInfo
		if ln := f["level"]; ln != nil {
			if s, ok := l.str(ln, join(field, "level")); ok {
				if err := a.Level.UnmarshalText([]byte(s)); err != nil || strings.ContainsAny(s, "+-") {
					l.errf(ln, join(field, "level"), "want debug, info, warn or error, got %q", s)
				}
			}
		}
	}
	return a
}

// tx compiles a tx: a list of ops, or a mapping {ops, reads?, onConflict?,
// onMissing?}.
func (l *loader) tx(a *Action, body *yaml.Node, field string, sc *scope, depth int) {
	if body.Kind == yaml.SequenceNode {
		a.Ops = l.actionList(body, field, sc, depth, true)
		return
	}
	if body.Kind != yaml.MappingNode {
		l.errf(body, field, "want a list of actions or a mapping with ops, reads, onConflict and onMissing, got %s", kindName(body))
		return
	}
	f := l.fields(body, field, "ops", "reads", "onConflict", "onMissing")
	if on := f["ops"]; on == nil {
		l.errf(body, join(field, "ops"), "required")
	} else {
		a.Ops = l.actionList(on, join(field, "ops"), sc, depth, true)
	}
	if rn := f["reads"]; rn != nil {
		a.Reads = l.reads(rn, join(field, "reads"), sc)
	}
	l.onConflict(a, f, field, false)
	l.onMissing(a, f, field, false)
}

// reads compiles a tx's reads: a non-empty list of {bucket, key, version}.
func (l *loader) reads(n *yaml.Node, field string, sc *scope) []*ReadCheck {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errf(n, field, "want a non-empty list of {bucket, key, version}")
		return nil
	}
	var out []*ReadCheck
	for i, rn := range n.Content {
		fi := index(field, i)
		f := l.fields(rn, fi, "bucket", "key", "version")
		if f == nil {
			continue
		}
		out = append(out, &ReadCheck{
			Bucket:  l.required(f, rn, fi, "bucket", l.bucket),
			Key:     l.requiredValue(f, rn, fi, "key", sc, l.keyValue),
			Version: l.requiredValue(f, rn, fi, "version", sc, l.versionValue),
			Line:    rn.Line,
		})
	}
	return out
}

// onConflict reads the onConflict field of write or tx action a. Inside a
// tx it is refused: the tx is one command and has the one policy. On an
// update or delete it needs expectVersion, without which they cannot
// conflict.
func (l *loader) onConflict(a *Action, f map[string]*yaml.Node, field string, inTx bool) {
	n := f["onConflict"]
	if n == nil {
		return
	}
	field = join(field, "onConflict")
	s, ok := l.str(n, field)
	if !ok {
		return
	}
	switch p := OnConflict(s); {
	case p != ConflictSkip && p != ConflictFail:
		l.errf(n, field, "want skip or fail, got %q", s)
	case inTx:
		l.errf(n, field, "set onConflict on the tx, not on its ops: the tx is one command")
	case (a.Kind == KindUpdate || a.Kind == KindDelete) && a.ExpectVersion == nil && f["expectVersion"] == nil:
		l.errf(n, field, "%s without expectVersion cannot conflict", a.Kind)
	default:
		a.OnConflict = p
	}
}

// onMissing reads the onMissing field of an update or tx: the only
// actions the store answers not_found (an upsert inserts a missing record,
// a delete answers deleted: false). Inside a tx it is refused: the tx is
// one command and has the one policy.
func (l *loader) onMissing(a *Action, f map[string]*yaml.Node, field string, inTx bool) {
	n := f["onMissing"]
	if n == nil {
		return
	}
	field = join(field, "onMissing")
	s, ok := l.str(n, field)
	if !ok {
		return
	}
	switch p := OnMissing(s); {
	case p != MissingSkip && p != MissingFail && p != MissingRetry:
		l.errf(n, field, "want skip, fail or retry, got %q", s)
	case inTx:
		l.errf(n, field, "set onMissing on the tx, not on its ops: the tx is one command")
	default:
		a.OnMissing = p
	}
}

func literal(v *Value) (any, bool) {
	if v == nil {
		return nil, false
	}
	return v.Literal()
}

var (
	identRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	celReserved = []string{"as", "break", "const", "continue", "else", "false", "for", "function", "if",
		"import", "in", "let", "loop", "package", "namespace", "null", "return", "true", "var", "void", "while"}
)

func (l *loader) forEach(a *Action, body *yaml.Node, field string, sc *scope, depth int, inTx bool) {
	if depth >= MaxForEachDepth {
		l.errf(body, field, "forEach nested more than %d deep", MaxForEachDepth)
		return
	}
	f := l.fields(body, field, "query", "as", "key", "do")
	if f == nil {
		return
	}
	if qn := f["query"]; qn == nil {
		l.errf(body, join(field, "query"), "required")
	} else if q := l.fields(qn, join(field, "query"), "bucket", "where"); q != nil {
		a.Bucket = l.required(q, qn, join(field, "query"), "bucket", l.bucket)
		a.Where = l.optionalValue(q, join(field, "query"), "where", sc, l.mapValue)
	}
	a.As = l.required(f, body, field, "as", l.str2)
	inner := sc
	switch {
	case a.As == "":
	case !identRE.MatchString(a.As) || slices.Contains(celReserved, a.As):
		l.errf(f["as"], join(field, "as"), "%q is not a usable variable name", a.As)
	case sc.has(a.As):
		l.errf(f["as"], join(field, "as"), "%q is already bound here", a.As)
	default:
		var err error
		if inner, err = sc.with(a.As); err != nil {
			l.errf(f["as"], join(field, "as"), "%v", err)
			inner = sc
		}
	}
	if kn := f["key"]; kn != nil {
		a.ItemKey, _ = l.str(kn, join(field, "key"))
	}
	if dn := f["do"]; dn == nil {
		l.errf(body, join(field, "do"), "required")
	} else {
		a.Do = l.actionList(dn, join(field, "do"), inner, depth+1, inTx)
	}
}

// str2 is str with the signature required takes.
func (l *loader) str2(n *yaml.Node, field string) string {
	s, _ := l.str(n, field)
	return s
}

// required parses a required field of mapping f with parse.
func (l *loader) required(f map[string]*yaml.Node, parent *yaml.Node, field, key string,
	parse func(*yaml.Node, string) string) string {
	if f == nil {
		return ""
	}
	n := f[key]
	if n == nil {
		l.errf(parent, join(field, key), "required")
		return ""
	}
	return parse(n, join(field, key))
}

type valueParser func(*yaml.Node, string, *scope) *Value

func (l *loader) requiredValue(f map[string]*yaml.Node, parent *yaml.Node, field, key string, sc *scope, parse valueParser) *Value {
	if f != nil && f[key] == nil {
		l.errf(parent, join(field, key), "required")
		return nil
	}
	return l.optionalValue(f, field, key, sc, parse)
}

func (l *loader) optionalValue(f map[string]*yaml.Node, field, key string, sc *scope, parse valueParser) *Value {
	if f == nil || f[key] == nil {
		return nil
	}
	return parse(f[key], join(field, key), sc)
}

// isExprString reports whether n is a string that is exactly one ${expr}.
func isExprString(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return false
	}
	parts, err := splitTemplate(n.Value)
	return err == nil && len(parts) == 1 && parts[0].isExpr
}

// mapValue compiles a mapping, or an expression that yields one.
func (l *loader) mapValue(n *yaml.Node, field string, sc *scope) *Value {
	if n.Kind != yaml.MappingNode && !isExprString(n) {
		l.errf(n, field, "want a mapping or a ${...} expression, got %s", kindName(n))
		return nil
	}
	return l.value(n, field, sc)
}

// keyValue compiles a record key: a string, a number or an expression.
func (l *loader) keyValue(n *yaml.Node, field string, sc *scope) *Value {
	if n.Kind != yaml.ScalarNode || !slices.Contains([]string{"!!str", "!!int", "!!float"}, n.ShortTag()) {
		l.errf(n, field, "want a string, a number or a ${...} expression, got %s", kindName(n))
		return nil
	}
	return l.value(n, field, sc)
}

// versionValue compiles a record version: a whole number from 0, or an
// expression checked when it is evaluated.
func (l *loader) versionValue(n *yaml.Node, field string, sc *scope) *Value {
	if isExprString(n) {
		return l.value(n, field, sc)
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil || v < 0 || v > maxVersion {
		l.errf(n, field, "want a whole number from 0 or a ${...} expression, got %s", kindName(n))
		return nil
	}
	return l.value(n, field, sc)
}

// stringValue compiles a string template.
func (l *loader) stringValue(n *yaml.Node, field string, sc *scope) *Value {
	if _, ok := l.str(n, field); !ok {
		return nil
	}
	return l.value(n, field, sc)
}

// value compiles any YAML value into a template.
func (l *loader) value(n *yaml.Node, field string, sc *scope) *Value {
	switch n.Kind {
	case yaml.MappingNode:
		v := &Value{kind: valueMap}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, e := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				l.errf(k, field, "keys must be strings")
				continue
			}
			if seen[k.Value] {
				l.errf(k, join(field, k.Value), "duplicate key")
				continue
			}
			seen[k.Value] = true
			if ev := l.value(e, join(field, k.Value), sc); ev != nil {
				v.keys = append(v.keys, k.Value)
				v.elems = append(v.elems, ev)
			}
		}
		return v
	case yaml.SequenceNode:
		v := &Value{kind: valueList}
		for i, e := range n.Content {
			if ev := l.value(e, index(field, i), sc); ev != nil {
				v.elems = append(v.elems, ev)
			}
		}
		return v
	}
	switch n.ShortTag() {
	case "!!str", "!!timestamp":
		v, err := compileString(sc, n.Value)
		if err != nil {
			l.errf(n, field, "%v", err)
			return nil
		}
		return v
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			l.errf(n, field, "%q is not a finite number", n.Value)
			return nil
		}
		return &Value{kind: valueLiteral, lit: f}
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			l.errf(n, field, "%v", err)
			return nil
		}
		return &Value{kind: valueLiteral, lit: b}
	case "!!null":
		return &Value{kind: valueLiteral}
	}
	l.errf(n, field, "unsupported YAML value of type %s", n.ShortTag())
	return nil
}
