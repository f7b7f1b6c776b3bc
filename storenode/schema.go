package storenode

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/storeloop/storeloop/events"
)

// Limits on a bucket definition. They keep a definition (and the work of
// validating every record against it) bounded whatever a client sends.
const (
	maxSchemaFields   = 256
	maxSchemaIndexes  = 32
	maxFieldNameLen   = 128
	maxPatternLen     = 1024
	maxEnumValues     = 1024
	schemaFieldPrefix = "schema."
)

// Issue codes. Definition issues (compileSchema) use the name of the
// offending FieldDef option as their code; record issues use the codes below.
const (
	issueRequired      = "required"
	issueType          = "type"
	issueEnum          = "enum"
	issueMin           = "min"
	issueMax           = "max"
	issueMinLength     = "minLength"
	issueMaxLength     = "maxLength"
	issuePattern       = "pattern"
	issueFormat        = "format"
	issueUnknownField  = "unknown_field"
	issueReservedField = "reserved_field"
	issueImmutableKey  = "immutable_key"
	issueKey           = "key"

	// Definition-only codes.
	issueBucket    = "bucket"
	issueName      = "name"
	issueGenerated = "generated"
	issueDefault   = "default"
	issueUnique    = "unique"
	issueIndex     = "index"
	issueLimit     = "limit"
)

// schema is a bucket definition compiled for validating records: patterns
// compiled, enum and default values normalised to what JSON decoding
// produces (float64 numbers), fields in a fixed order.
type schema struct {
	// def is the definition as given to compileSchema.
	def events.BucketDef
	key string
	// fields by name; names is their sorted list, for deterministic work.
	fields map[string]*schemaField
	names  []string
	unique []string // the names of the unique fields, in order
}

type schemaField struct {
	name string
	def  events.FieldDef
	re   *regexp.Regexp
	enum []any
	dflt any // nil when the field has no default
}

// compileSchema checks def and compiles it. A bad definition is a
// bad_request *events.Error listing every problem, each with the path of the
// offending part ("bucket", "key", "indexes", "schema.<field>") and the
// option at fault as its code.
func compileSchema(def events.BucketDef) (*schema, error) {
	var issues []events.Issue
	add := func(field, code, format string, args ...any) {
		issues = append(issues, events.Issue{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if !events.ValidBucketName(def.Bucket) {
		add("bucket", issueBucket, "bucket name %q must be 1 to %d letters, digits, '_' or '-'", def.Bucket, events.MaxBucketNameLen)
	}
	if len(def.Schema) > maxSchemaFields {
		add("schema", issueLimit, "%d fields, at most %d allowed", len(def.Schema), maxSchemaFields)
	}

	s := &schema{def: def, key: def.Key, fields: make(map[string]*schemaField, len(def.Schema))}
	for name := range def.Schema {
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	for _, name := range s.names {
		f, fieldIssues := compileField(name, def.Schema[name])
		issues = append(issues, fieldIssues...)
		s.fields[name] = f
		if f.def.Unique {
			s.unique = append(s.unique, name)
		}
	}

	switch kf := s.fields[def.Key]; {
	case def.Key == "":
		add("key", issueKey, "the key field is required")
	case kf == nil:
		add("key", issueKey, "key field %q is not in the schema", def.Key)
	case kf.def.Type != events.TypeString && kf.def.Type != events.TypeNumber:
		add("key", issueKey, "key field %q must be of type string or number, not %q", def.Key, kf.def.Type)
	}

	if len(def.Indexes) > maxSchemaIndexes {
		add("indexes", issueLimit, "%d indexes, at most %d allowed", len(def.Indexes), maxSchemaIndexes)
	}
	seen := map[string]bool{}
	for _, ix := range def.Indexes {
		f := s.fields[ix]
		switch {
		case f == nil:
			add("indexes", issueIndex, "index %q names no field of the schema", ix)
		case seen[ix]:
			add("indexes", issueIndex, "index %q is listed twice", ix)
		case !indexableType(f.def.Type):
			add("indexes", issueIndex, "index %q is on a field of type %s, which cannot be indexed", ix, f.def.Type)
		}
		seen[ix] = true
	}

	if len(issues) > 0 {
		sortIssues(issues)
		return nil, &events.Error{Code: events.CodeBadRequest, Message: "invalid bucket definition", Issues: issues}
	}
	return s, nil
}

// compileField checks one FieldDef. It returns the field even when there are
// issues, so that the key and index checks can still look at its type.
func compileField(name string, fd events.FieldDef) (*schemaField, []events.Issue) {
	path := schemaFieldPrefix + name
	var issues []events.Issue
	add := func(code, format string, args ...any) {
		issues = append(issues, events.Issue{Field: path, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	f := &schemaField{name: name, def: fd}

	switch {
	case name == "":
		add(issueName, "field names must not be empty")
	case strings.HasPrefix(name, "_"):
		add(issueName, "field names starting with '_' are reserved for the store's own fields")
	case strings.Contains(name, "."):
		add(issueName, "field names must not contain '.'")
	case len(name) > maxFieldNameLen || !utf8.ValidString(name):
		add(issueName, "field names must be valid UTF-8 of at most %d bytes", maxFieldNameLen)
	}

	typ := fd.Type
	typeOK := slices.Contains([]string{events.TypeString, events.TypeNumber, events.TypeBoolean,
		events.TypeObject, events.TypeArray, events.TypeDate}, typ)
	if !typeOK {
		add(issueType, "type %q is not one of string, number, boolean, object, array, date", typ)
	}

	if fd.Generated != "" {
		want, known := generatedTypes[fd.Generated]
		switch {
		case !known:
			add(issueGenerated, "generated %q is not one of autoincrement, uuid, cuid, timestamp", fd.Generated)
		case typeOK && !slices.Contains(want, typ):
			add(issueGenerated, "generated %q needs a field of type %s, not %s", fd.Generated, strings.Join(want, " or "), typ)
		}
	}

	if len(fd.Enum) > 0 {
		switch {
		case len(fd.Enum) > maxEnumValues:
			add(issueEnum, "%d enum values, at most %d allowed", len(fd.Enum), maxEnumValues)
		case typ == events.TypeObject || typ == events.TypeArray:
			add(issueEnum, "enum is not allowed on a field of type %s", typ)
		default:
			for i, v := range fd.Enum {
				nv, err := jsonValue(v)
				if err != nil || (typeOK && !hasType(typ, nv)) {
					add(issueEnum, "enum value %d (%s) is not a %s", i, describe(v), typ)
					continue
				}
				f.enum = append(f.enum, nv)
			}
		}
	}

	if fd.Pattern != "" {
		switch {
		case typeOK && typ != events.TypeString:
			add(issuePattern, "pattern is only allowed on string fields")
		case len(fd.Pattern) > maxPatternLen:
			add(issuePattern, "pattern is %d bytes long, at most %d allowed", len(fd.Pattern), maxPatternLen)
		default:
			re, err := regexp.Compile(fd.Pattern)
			if err != nil {
				add(issuePattern, "pattern does not compile: %v", err)
			}
			f.re = re
		}
	}

	for _, b := range []struct {
		code string
		v    *float64
	}{{issueMin, fd.Min}, {issueMax, fd.Max}} {
		switch {
		case b.v == nil:
		case typeOK && typ != events.TypeNumber:
			add(b.code, "%s is only allowed on number fields", b.code)
		case math.IsNaN(*b.v) || math.IsInf(*b.v, 0):
			add(b.code, "%s must be a finite number", b.code)
		}
	}
	if fd.Min != nil && fd.Max != nil && *fd.Min > *fd.Max {
		add(issueMin, "min %s is greater than max %s", formatNumber(*fd.Min), formatNumber(*fd.Max))
	}

	for _, b := range []struct {
		code string
		v    *int
	}{{issueMinLength, fd.MinLength}, {issueMaxLength, fd.MaxLength}} {
		switch {
		case b.v == nil:
		case typeOK && typ != events.TypeString && typ != events.TypeArray:
			add(b.code, "%s is only allowed on string and array fields", b.code)
		case *b.v < 0:
			add(b.code, "%s must not be negative", b.code)
		}
	}
	if fd.MinLength != nil && fd.MaxLength != nil && *fd.MaxLength >= 0 && *fd.MinLength > *fd.MaxLength {
		add(issueMinLength, "minLength %d is greater than maxLength %d", *fd.MinLength, *fd.MaxLength)
	}

	if fd.Format != "" {
		switch {
		case fd.Format != events.FormatEmail && fd.Format != events.FormatURL && fd.Format != events.FormatISODate:
			add(issueFormat, "format %q is not one of email, url, iso-date", fd.Format)
		case typeOK && typ != events.TypeString:
			add(issueFormat, "format is only allowed on string fields")
		}
	}

	if fd.Unique && typeOK && !indexableType(typ) {
		add(issueUnique, "unique is not allowed on a field of type %s", typ)
	}

	if fd.Default != nil {
		nv, err := jsonValue(fd.Default)
		switch {
		case fd.Generated != "":
			add(issueDefault, "a field cannot have both a default and a generated value")
		case err != nil:
			add(issueDefault, "default is not a JSON value: %v", err)
		case len(issues) == 0:
			// Only a field without other problems can judge its default.
			for _, is := range f.check(nv) {
				add(issueDefault, "default %s", is.Message)
			}
			f.dflt = nv
		}
	}
	return f, issues
}

// generatedTypes lists the field types each generator can fill. A date field
// accepts unix milliseconds, so it can take a timestamp.
var generatedTypes = map[string][]string{
	events.GenAutoincrement: {events.TypeNumber},
	events.GenTimestamp:     {events.TypeNumber, events.TypeDate},
	events.GenUUID:          {events.TypeString},
	events.GenCUID:          {events.TypeString},
}

// indexableType reports whether values of type typ can be indexed (and so be
// unique): projections.Index skips objects and arrays.
func indexableType(typ string) bool {
	return typ != events.TypeObject && typ != events.TypeArray
}

// uniqueFields returns the fields marked unique, sorted. Checking them needs
// the bucket's indexes, so validate leaves it to the caller.
func (s *schema) uniqueFields() []string { return s.unique }

// prepareInsert turns an insert request's record into the record to store:
// a new record (rec is left untouched) with defaults and generated values
// filled in for absent or null fields, then validated. Meta fields are the
// caller's to set; in rec they are rejected like every '_' name.
// nextAutoinc returns the next value of an autoincrement field.
func (s *schema) prepareInsert(rec events.Record, nextAutoinc func(field string) float64, now time.Time) (events.Record, *events.Error) {
	out := make(events.Record, len(s.fields))
	var issues []events.Issue
	for name, v := range rec {
		if strings.HasPrefix(name, "_") {
			issues = append(issues, events.Issue{Field: name, Code: issueReservedField,
				Message: "fields starting with '_' are set by the store"})
			continue
		}
		out[name] = cloneValue(v)
	}
	for _, name := range s.names {
		f := s.fields[name]
		if out[name] != nil {
			continue
		}
		switch {
		case f.dflt != nil:
			out[name] = cloneValue(f.dflt)
		case f.def.Generated != "":
			out[name] = generateValue(f.def.Generated, name, nextAutoinc, now)
		}
	}
	issues = append(issues, s.validate(out)...)
	if len(issues) > 0 {
		return nil, s.invalid(issues)
	}
	return out, nil
}

// generateValue produces the value of a generated field.
func generateValue(gen, field string, nextAutoinc func(string) float64, now time.Time) any {
	switch gen {
	case events.GenAutoincrement:
		return nextAutoinc(field)
	case events.GenUUID:
		return uuid.NewString()
	case events.GenCUID:
		return newCUID(now)
	case events.GenTimestamp:
		return float64(now.UnixMilli())
	}
	return nil
}

// validate checks a whole record against the schema and returns every issue,
// sorted by field then code. Meta fields are allowed (stored records carry
// them); unique is not checked here (see uniqueFields). The key field is
// always required.
func (s *schema) validate(rec events.Record) []events.Issue {
	var issues []events.Issue
	for name := range rec {
		if !events.IsMetaField(name) && s.fields[name] == nil {
			issues = append(issues, events.Issue{Field: name, Code: issueUnknownField, Message: "field is not in the schema"})
		}
	}
	for _, name := range s.names {
		f := s.fields[name]
		v := rec[name]
		if v == nil {
			if f.def.Required || name == s.key {
				issues = append(issues, events.Issue{Field: name, Code: issueRequired, Message: "is required"})
			}
			continue
		}
		issues = append(issues, f.check(v)...)
	}
	sortIssues(issues)
	return issues
}

// check validates a present, non-null value of the field. A value of the
// wrong type gets only the type issue: the other checks would be noise.
func (f *schemaField) check(v any) []events.Issue {
	var issues []events.Issue
	add := func(code, format string, args ...any) {
		issues = append(issues, events.Issue{Field: f.name, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	fd := f.def
	if !hasType(fd.Type, v) {
		if s, isString := v.(string); isString && fd.Type == events.TypeDate {
			// A string is a date's type; what is wrong is the date itself.
			add(issueType, "%q is not a valid date (want an ISO-8601 date like 2006-01-02 or 2006-01-02T15:04:05Z, or unix milliseconds)", s)
			return issues
		}
		add(issueType, "must be %s, not %s", typeDescription(fd.Type), describe(v))
		return issues
	}
	if len(f.enum) > 0 && !slices.ContainsFunc(f.enum, func(e any) bool { return e == v }) {
		// Comparable: enum values and v are strings, float64s or bools here,
		// so == compares numbers numerically.
		b, _ := json.Marshal(f.enum)
		add(issueEnum, "must be one of %s", b)
	}
	switch x := v.(type) {
	case float64:
		if fd.Min != nil && x < *fd.Min {
			add(issueMin, "must be at least %s", formatNumber(*fd.Min))
		}
		if fd.Max != nil && x > *fd.Max {
			add(issueMax, "must be at most %s", formatNumber(*fd.Max))
		}
	case string:
		f.checkLength(utf8.RuneCountInString(x), "characters", add)
		if f.re != nil && !f.re.MatchString(x) {
			add(issuePattern, "must match the pattern %q", fd.Pattern)
		}
		if fd.Format != "" && !hasFormat(fd.Format, x) {
			add(issueFormat, "must be a valid %s", fd.Format)
		}
	case []any:
		f.checkLength(len(x), "elements", add)
	}
	return issues
}

func (f *schemaField) checkLength(n int, unit string, add func(code, format string, args ...any)) {
	if f.def.MinLength != nil && n < *f.def.MinLength {
		add(issueMinLength, "must have at least %d %s", *f.def.MinLength, unit)
	}
	if f.def.MaxLength != nil && n > *f.def.MaxLength {
		add(issueMaxLength, "must have at most %d %s", *f.def.MaxLength, unit)
	}
}

// checkChanges checks the changes of an update before they are merged: every
// field must be in the schema, none may be a store field, and the key cannot
// change (the key field may not appear in changes at all).
func (s *schema) checkChanges(changes events.Record) []events.Issue {
	var issues []events.Issue
	for name := range changes {
		if is, bad := s.checkTarget(name); bad {
			issues = append(issues, is)
		}
	}
	sortIssues(issues)
	return issues
}

// checkIncrement checks the increments of an update or upsert: each field
// must be a number field of the schema other than the key, and each amount a
// finite number.
func (s *schema) checkIncrement(inc map[string]float64) []events.Issue {
	var issues []events.Issue
	for name, by := range inc {
		if is, bad := s.checkTarget(name); bad {
			issues = append(issues, is)
			continue
		}
		switch {
		case s.fields[name].def.Type != events.TypeNumber:
			issues = append(issues, events.Issue{Field: name, Code: issueType,
				Message: fmt.Sprintf("cannot increment a field of type %s", s.fields[name].def.Type)})
		case math.IsNaN(by) || math.IsInf(by, 0):
			issues = append(issues, events.Issue{Field: name, Code: issueType, Message: "increment must be a finite number"})
		}
	}
	sortIssues(issues)
	return issues
}

// checkTarget reports why a field cannot be written by an update, if it
// cannot.
func (s *schema) checkTarget(name string) (events.Issue, bool) {
	switch {
	case strings.HasPrefix(name, "_"):
		return events.Issue{Field: name, Code: issueReservedField, Message: "fields starting with '_' are set by the store"}, true
	case s.fields[name] == nil:
		return events.Issue{Field: name, Code: issueUnknownField, Message: "field is not in the schema"}, true
	case name == s.key:
		return events.Issue{Field: name, Code: issueImmutableKey, Message: "the key of a record cannot change"}, true
	}
	return events.Issue{}, false
}

// keyOf returns the key of rec: a string or a finite float64.
func (s *schema) keyOf(rec events.Record) (any, *events.Error) {
	switch k := rec[s.key].(type) {
	case string:
		return k, nil
	case float64:
		if k == 0 {
			// The stored record says 0 for a key of -0, the key it is under.
			rec[s.key] = 0.0
			return 0.0, nil
		}
		if !math.IsNaN(k) && !math.IsInf(k, 0) {
			return k, nil
		}
	}
	return nil, s.invalid([]events.Issue{{Field: s.key, Code: issueKey,
		Message: fmt.Sprintf("the key must be a string or a finite number, not %s", describe(rec[s.key]))}})
}

// invalid wraps record issues in a validation error.
func (s *schema) invalid(issues []events.Issue) *events.Error {
	sortIssues(issues)
	return &events.Error{Code: events.CodeValidation,
		Message: fmt.Sprintf("record does not match the schema of bucket %q", s.def.Bucket), Issues: issues}
}

// hasType reports whether v, as JSON decoding produces it, is of type typ.
func hasType(typ string, v any) bool {
	switch typ {
	case events.TypeString:
		_, ok := v.(string)
		return ok
	case events.TypeNumber:
		return isFinite(v)
	case events.TypeBoolean:
		_, ok := v.(bool)
		return ok
	case events.TypeObject:
		_, ok := v.(map[string]any)
		return ok
	case events.TypeArray:
		_, ok := v.([]any)
		return ok
	case events.TypeDate:
		if s, ok := v.(string); ok {
			return isISODate(s)
		}
		return isFinite(v)
	}
	return false
}

func isFinite(v any) bool {
	x, ok := v.(float64)
	return ok && !math.IsNaN(x) && !math.IsInf(x, 0)
}

func typeDescription(typ string) string {
	if typ == events.TypeDate {
		return "a date (an ISO-8601 string or unix milliseconds)"
	}
	return "a " + typ
}

// describe names the JSON kind of v for messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64:
		if isFinite(x) {
			return "a number"
		}
		return "a non-finite number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a Go %T", v)
}

// hasFormat reports whether s is in format.
func hasFormat(format, s string) bool {
	switch format {
	case events.FormatEmail:
		// A bare address: "Ann <ann@example.com>" is a mail header, not an email.
		a, err := mail.ParseAddress(s)
		return err == nil && a.Name == "" && a.Address == s
	case events.FormatURL:
		u, err := url.Parse(s)
		return err == nil && u.Scheme != "" && u.Host != ""
	case events.FormatISODate:
		return isISODate(s)
	}
	return false
}

// isISODate accepts an RFC 3339 timestamp or a calendar date (2006-01-02).
func isISODate(s string) bool {
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return true
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

func formatNumber(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func sortIssues(issues []events.Issue) {
	slices.SortFunc(issues, func(a, b events.Issue) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		if c := strings.Compare(a.Code, b.Code); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
}

// jsonValue converts a definition value (which may come from YAML or Go, with
// ints) to what JSON decoding produces, as a deep copy.
func jsonValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// cloneValue deep-copies the objects and arrays of a JSON value, so a stored
// record shares nothing with the request it came from.
func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneValue(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = cloneValue(e)
		}
		return a
	}
	return v
}

// cuidCounter makes ids generated in the same millisecond differ even before
// their random part does.
var cuidCounter atomic.Uint32

const (
	cuidLen     = 25
	cuidTimeLen = 8
	cuidCtrLen  = 4
	base36      = "0123456789abcdefghijklmnopqrstuvwxyz"
)

// newCUID returns a collision-resistant id in the style of cuid: 'c', the
// time (8 base-36 digits, good until 2059), a counter (4 digits) and 12
// random base-36 characters, 25 characters in all.
func newCUID(now time.Time) string {
	b := make([]byte, 0, cuidLen)
	b = append(b, 'c')
	b = appendBase36(b, uint64(max(now.UnixMilli(), 0)), cuidTimeLen)
	b = appendBase36(b, uint64(cuidCounter.Add(1)), cuidCtrLen)
	// Rejection sampling keeps the random characters uniform: 252 = 7*36.
	var buf [32]byte
	for len(b) < cuidLen {
		rand.Read(buf[:])
		for _, r := range buf {
			if r < 252 && len(b) < cuidLen {
				b = append(b, base36[r%36])
			}
		}
	}
	return string(b)
}

// appendBase36 appends the last n base-36 digits of x, zero-padded.
func appendBase36(b []byte, x uint64, n int) []byte {
	start := len(b)
	b = append(b, make([]byte, n)...)
	for i := len(b) - 1; i >= start; i-- {
		b[i] = base36[x%36]
		x /= 36
	}
	return b
}
