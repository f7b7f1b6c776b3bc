package storenode

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/storeloop/storeloop/events"
)

// schemaPtr returns a pointer to v (for FieldDef's optional bounds).
func schemaPtr[T any](v T) *T { return &v }

// issueList renders issues as "field:code" in their order, the part of an
// issue tests pin down exactly; messages are checked to be present.
func issueList(t *testing.T, issues []events.Issue) []string {
	t.Helper()
	out := make([]string, 0, len(issues))
	for _, is := range issues {
		if is.Message == "" {
			t.Errorf("issue %s:%s has no message", is.Field, is.Code)
		}
		out = append(out, is.Field+":"+is.Code)
	}
	return out
}

// ordersDef uses every FieldDef option validly.
func ordersDef() events.BucketDef {
	return events.BucketDef{
		Bucket: "orders",
		Key:    "id",
		Schema: map[string]events.FieldDef{
			"id":        {Type: events.TypeNumber, Generated: events.GenAutoincrement},
			"ref":       {Type: events.TypeString, Generated: events.GenUUID, Unique: true},
			"slug":      {Type: events.TypeString, Generated: events.GenCUID},
			"createdTs": {Type: events.TypeNumber, Generated: events.GenTimestamp},
			"userId":    {Type: events.TypeString, Required: true, MinLength: schemaPtr(1), MaxLength: schemaPtr(8), Pattern: "^u[0-9]+$"},
			"initials":  {Type: events.TypeString, MaxLength: schemaPtr(3)},
			"total":     {Type: events.TypeNumber, Required: true, Min: schemaPtr(0.0), Max: schemaPtr(1000.0)},
			"status":    {Type: events.TypeString, Enum: []any{"pending", "paid", "shipped"}, Default: "pending"},
			"priority":  {Type: events.TypeNumber, Enum: []any{1.0, 2.0, 3.0}},
			"gift":      {Type: events.TypeBoolean, Default: false},
			"email":     {Type: events.TypeString, Format: events.FormatEmail},
			"site":      {Type: events.TypeString, Format: events.FormatURL},
			"day":       {Type: events.TypeString, Format: events.FormatISODate},
			"due":       {Type: events.TypeDate},
			"address":   {Type: events.TypeObject, Default: map[string]any{"country": "NL", "lines": []any{"a"}}},
			"tags":      {Type: events.TypeArray, MinLength: schemaPtr(0), MaxLength: schemaPtr(3), Default: []any{}},
		},
		Indexes: []string{"userId", "status"},
	}
}

func mustCompile(t *testing.T, def events.BucketDef) *schema {
	t.Helper()
	s, err := compileSchema(def)
	if err != nil {
		t.Fatalf("compileSchema: %v", err)
	}
	return s
}

// simpleDef is bucket "b" keyed by the string field "id", plus fields.
func simpleDef(fields map[string]events.FieldDef) events.BucketDef {
	schema := map[string]events.FieldDef{"id": {Type: events.TypeString}}
	for k, v := range fields {
		schema[k] = v
	}
	return events.BucketDef{Bucket: "b", Key: "id", Schema: schema}
}

func TestCompileSchemaAcceptsValidDefinitions(t *testing.T) {
	tests := []struct {
		name string
		def  events.BucketDef
	}{
		{"every option", ordersDef()},
		{"string key", simpleDef(nil)},
		{"generated uuid key", events.BucketDef{Bucket: "b", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: events.TypeString, Generated: events.GenUUID}}}},
		{"generated cuid key", events.BucketDef{Bucket: "b", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: events.TypeString, Generated: events.GenCUID}}}},
		{"timestamp into a date", simpleDef(map[string]events.FieldDef{"at": {Type: events.TypeDate, Generated: events.GenTimestamp}})},
		{"date enum of string and number", simpleDef(map[string]events.FieldDef{"at": {Type: events.TypeDate, Enum: []any{"2024-01-01", 0.0}}})},
		{"boolean enum", simpleDef(map[string]events.FieldDef{"ok": {Type: events.TypeBoolean, Enum: []any{true}}})},
		{"YAML ints in enum and default", simpleDef(map[string]events.FieldDef{"n": {Type: events.TypeNumber, Enum: []any{1, 2, int64(3)}, Default: 2}})},
		{"min equals max", simpleDef(map[string]events.FieldDef{"n": {Type: events.TypeNumber, Min: schemaPtr(1.0), Max: schemaPtr(1.0)}})},
		{"minLength equals maxLength on an array", simpleDef(map[string]events.FieldDef{"a": {Type: events.TypeArray, MinLength: schemaPtr(2), MaxLength: schemaPtr(2)}})},
		{"date default", simpleDef(map[string]events.FieldDef{"d": {Type: events.TypeDate, Default: "2024-05-01T10:00:00Z"}})},
		{"unique boolean", simpleDef(map[string]events.FieldDef{"flag": {Type: events.TypeBoolean, Unique: true}})},
		{"required with default", simpleDef(map[string]events.FieldDef{"s": {Type: events.TypeString, Required: true, Default: "x"}})},
		{"max fields and indexes", func() events.BucketDef {
			d := simpleDef(nil)
			for i := 1; i < maxSchemaFields; i++ {
				d.Schema[fmt.Sprintf("f%d", i)] = events.FieldDef{Type: events.TypeString}
				if i <= maxSchemaIndexes {
					d.Indexes = append(d.Indexes, fmt.Sprintf("f%d", i))
				}
			}
			return d
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustCompile(t, tt.def)
			if s.key != tt.def.Key || len(s.names) != len(tt.def.Schema) || !slices.IsSorted(s.names) {
				t.Fatalf("compiled key %q, names %v", s.key, s.names)
			}
		})
	}
}

func TestCompileSchemaRejectsInvalidDefinitions(t *testing.T) {
	tooManyFields := simpleDef(nil)
	for i := range maxSchemaFields {
		tooManyFields.Schema[fmt.Sprintf("f%d", i)] = events.FieldDef{Type: events.TypeString}
	}
	tooManyIndexes := simpleDef(nil)
	for i := range maxSchemaIndexes + 1 {
		name := fmt.Sprintf("f%d", i)
		tooManyIndexes.Schema[name] = events.FieldDef{Type: events.TypeString}
		tooManyIndexes.Indexes = append(tooManyIndexes.Indexes, name)
	}
	field := func(fd events.FieldDef) events.BucketDef { return simpleDef(map[string]events.FieldDef{"f": fd}) }
	str := events.FieldDef{Type: events.TypeString}

	tests := []struct {
		name string
		def  events.BucketDef
		want []string
	}{
		{"empty bucket name", events.BucketDef{Key: "id", Schema: simpleDef(nil).Schema}, []string{"bucket:bucket"}},
		{"bucket name with a dot", events.BucketDef{Bucket: "a.b", Key: "id", Schema: simpleDef(nil).Schema}, []string{"bucket:bucket"}},
		{"bucket name too long", events.BucketDef{Bucket: strings.Repeat("a", events.MaxBucketNameLen+1), Key: "id", Schema: simpleDef(nil).Schema}, []string{"bucket:bucket"}},
		{"no key", events.BucketDef{Bucket: "b", Schema: simpleDef(nil).Schema}, []string{"key:key"}},
		{"key not in schema", events.BucketDef{Bucket: "b", Key: "nope", Schema: simpleDef(nil).Schema}, []string{"key:key"}},
		{"no schema", events.BucketDef{Bucket: "b", Key: "id"}, []string{"key:key"}},
		{"boolean key", events.BucketDef{Bucket: "b", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: events.TypeBoolean}}}, []string{"key:key"}},
		{"date key", events.BucketDef{Bucket: "b", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: events.TypeDate}}}, []string{"key:key"}},
		{"empty field name", simpleDef(map[string]events.FieldDef{"": str}), []string{"schema.:name"}},
		{"reserved field name", simpleDef(map[string]events.FieldDef{"_version": str}), []string{"schema._version:name"}},
		{"underscore field name", simpleDef(map[string]events.FieldDef{"_x": str}), []string{"schema._x:name"}},
		{"dotted field name", simpleDef(map[string]events.FieldDef{"a.b": str}), []string{"schema.a.b:name"}},
		{"field name too long", simpleDef(map[string]events.FieldDef{strings.Repeat("n", maxFieldNameLen+1): str}), []string{"schema." + strings.Repeat("n", maxFieldNameLen+1) + ":name"}},
		{"field name not UTF-8", simpleDef(map[string]events.FieldDef{"\xff": str}), []string{"schema.\xff:name"}},
		{"unknown type", field(events.FieldDef{Type: "text"}), []string{"schema.f:type"}},
		{"missing type", field(events.FieldDef{}), []string{"schema.f:type"}},
		{"unknown generator", field(events.FieldDef{Type: events.TypeNumber, Generated: "serial"}), []string{"schema.f:generated"}},
		{"autoincrement on a string", field(events.FieldDef{Type: events.TypeString, Generated: events.GenAutoincrement}), []string{"schema.f:generated"}},
		{"timestamp on a string", field(events.FieldDef{Type: events.TypeString, Generated: events.GenTimestamp}), []string{"schema.f:generated"}},
		{"uuid on a number", field(events.FieldDef{Type: events.TypeNumber, Generated: events.GenUUID}), []string{"schema.f:generated"}},
		{"cuid on a boolean", field(events.FieldDef{Type: events.TypeBoolean, Generated: events.GenCUID}), []string{"schema.f:generated"}},
		{"enum on an object", field(events.FieldDef{Type: events.TypeObject, Enum: []any{map[string]any{}}}), []string{"schema.f:enum"}},
		{"enum on an array", field(events.FieldDef{Type: events.TypeArray, Enum: []any{[]any{}}}), []string{"schema.f:enum"}},
		{"number in a string enum", field(events.FieldDef{Type: events.TypeString, Enum: []any{"a", 1.0}}), []string{"schema.f:enum"}},
		{"string in a number enum", field(events.FieldDef{Type: events.TypeNumber, Enum: []any{"1"}}), []string{"schema.f:enum"}},
		{"string in a boolean enum", field(events.FieldDef{Type: events.TypeBoolean, Enum: []any{"yes"}}), []string{"schema.f:enum"}},
		{"non-date in a date enum", field(events.FieldDef{Type: events.TypeDate, Enum: []any{"soon"}}), []string{"schema.f:enum"}},
		{"non-JSON enum value", field(events.FieldDef{Type: events.TypeNumber, Enum: []any{math.Inf(1)}}), []string{"schema.f:enum"}},
		{"too many enum values", field(events.FieldDef{Type: events.TypeNumber, Enum: make([]any, maxEnumValues+1)}), []string{"schema.f:enum"}},
		{"pattern does not compile", field(events.FieldDef{Type: events.TypeString, Pattern: "("}), []string{"schema.f:pattern"}},
		{"pattern too long", field(events.FieldDef{Type: events.TypeString, Pattern: strings.Repeat("a", maxPatternLen+1)}), []string{"schema.f:pattern"}},
		{"pattern on a number", field(events.FieldDef{Type: events.TypeNumber, Pattern: "1"}), []string{"schema.f:pattern"}},
		{"min on a string", field(events.FieldDef{Type: events.TypeString, Min: schemaPtr(1.0)}), []string{"schema.f:min"}},
		{"max on a boolean", field(events.FieldDef{Type: events.TypeBoolean, Max: schemaPtr(1.0)}), []string{"schema.f:max"}},
		{"min above max", field(events.FieldDef{Type: events.TypeNumber, Min: schemaPtr(2.0), Max: schemaPtr(1.0)}), []string{"schema.f:min"}},
		{"min NaN", field(events.FieldDef{Type: events.TypeNumber, Min: schemaPtr(math.NaN())}), []string{"schema.f:min"}},
		{"max infinite", field(events.FieldDef{Type: events.TypeNumber, Max: schemaPtr(math.Inf(1))}), []string{"schema.f:max"}},
		{"minLength on a number", field(events.FieldDef{Type: events.TypeNumber, MinLength: schemaPtr(1)}), []string{"schema.f:minLength"}},
		{"maxLength on an object", field(events.FieldDef{Type: events.TypeObject, MaxLength: schemaPtr(1)}), []string{"schema.f:maxLength"}},
		{"negative minLength", field(events.FieldDef{Type: events.TypeString, MinLength: schemaPtr(-1)}), []string{"schema.f:minLength"}},
		{"negative maxLength", field(events.FieldDef{Type: events.TypeArray, MaxLength: schemaPtr(-1)}), []string{"schema.f:maxLength"}},
		{"minLength above maxLength", field(events.FieldDef{Type: events.TypeString, MinLength: schemaPtr(3), MaxLength: schemaPtr(2)}), []string{"schema.f:minLength"}},
		{"unknown format", field(events.FieldDef{Type: events.TypeString, Format: "phone"}), []string{"schema.f:format"}},
		{"format on a date", field(events.FieldDef{Type: events.TypeDate, Format: events.FormatISODate}), []string{"schema.f:format"}},
		{"unique object", field(events.FieldDef{Type: events.TypeObject, Unique: true}), []string{"schema.f:unique"}},
		{"unique array", field(events.FieldDef{Type: events.TypeArray, Unique: true}), []string{"schema.f:unique"}},
		{"default of the wrong type", field(events.FieldDef{Type: events.TypeNumber, Default: "0"}), []string{"schema.f:default"}},
		{"default outside the enum", field(events.FieldDef{Type: events.TypeString, Enum: []any{"a"}, Default: "b"}), []string{"schema.f:default"}},
		{"default below min", field(events.FieldDef{Type: events.TypeNumber, Min: schemaPtr(1.0), Default: 0.0}), []string{"schema.f:default"}},
		{"default too long and off pattern", field(events.FieldDef{Type: events.TypeString, MaxLength: schemaPtr(1), Pattern: "^x", Default: "ab"}), []string{"schema.f:default", "schema.f:default"}},
		{"default not an email", field(events.FieldDef{Type: events.TypeString, Format: events.FormatEmail, Default: "nobody"}), []string{"schema.f:default"}},
		{"default with generated", field(events.FieldDef{Type: events.TypeString, Generated: events.GenUUID, Default: "x"}), []string{"schema.f:default"}},
		{"default not JSON", field(events.FieldDef{Type: events.TypeNumber, Default: make(chan int)}), []string{"schema.f:default"}},
		{"index on a missing field", func() events.BucketDef { d := simpleDef(nil); d.Indexes = []string{"nope"}; return d }(), []string{"indexes:index"}},
		{"index listed twice", func() events.BucketDef { d := simpleDef(nil); d.Indexes = []string{"id", "id"}; return d }(), []string{"indexes:index"}},
		{"index on an array", func() events.BucketDef {
			d := simpleDef(map[string]events.FieldDef{"a": {Type: events.TypeArray}})
			d.Indexes = []string{"a"}
			return d
		}(), []string{"indexes:index"}},
		{"too many fields", tooManyFields, []string{"schema:limit"}},
		{"too many indexes", tooManyIndexes, []string{"indexes:limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := compileSchema(tt.def)
			if s != nil {
				t.Fatal("compileSchema returned a schema for an invalid definition")
			}
			var e *events.Error
			if !errors.As(err, &e) || !errors.Is(err, events.ErrBadRequest) {
				t.Fatalf("err = %v, want a bad_request *events.Error", err)
			}
			if got := issueList(t, e.Issues); !slices.Equal(got, tt.want) {
				t.Fatalf("issues = %v, want %v\n%v", got, tt.want, e)
			}
		})
	}
}

func TestCompileSchemaReportsEveryIssueAtOnce(t *testing.T) {
	def := events.BucketDef{
		Bucket: "no spaces",
		Key:    "flag",
		Schema: map[string]events.FieldDef{
			"flag":  {Type: events.TypeBoolean},
			"_meta": {Type: events.TypeString},
			"n":     {Type: events.TypeNumber, Generated: events.GenUUID, Pattern: "x", MinLength: schemaPtr(-1)},
			"s":     {Type: "str"},
		},
		Indexes: []string{"missing"},
	}
	_, err := compileSchema(def)
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"bucket:bucket", "indexes:index", "key:key", "schema._meta:name",
		"schema.n:generated", "schema.n:minLength", "schema.n:pattern", "schema.s:type"}
	if got := issueList(t, e.Issues); !slices.Equal(got, want) {
		t.Fatalf("issues = %v, want %v", got, want)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "bad_request: invalid bucket definition:") {
		t.Fatalf("Error() = %q", msg)
	}
}

// validOrder is a record of ordersDef that passes validate.
func validOrder() events.Record {
	return events.Record{
		"id": 7.0, "ref": "r", "slug": "s", "createdTs": 1.0,
		"userId": "u12", "initials": "äöü", "total": 25.5, "status": "paid", "priority": 2.0,
		"gift": true, "email": "ann@example.com", "site": "https://example.com/x?y=1",
		"day": "2024-02-03", "due": "2024-02-03T10:00:00+02:00",
		"address": map[string]any{"city": "Utrecht"}, "tags": []any{"a", "b"},
		events.FieldVersion: 3.0, events.FieldCreatedAt: 1.0, events.FieldUpdatedAt: 2.0,
	}
}

func TestValidate(t *testing.T) {
	s := mustCompile(t, ordersDef())
	tests := []struct {
		name   string
		change events.Record // merged into validOrder; a nil value deletes
		want   []string
	}{
		{"valid", nil, nil},
		{"date as unix ms", events.Record{"due": 1.7e12}, nil},
		{"calendar date as date", events.Record{"due": "2024-02-03"}, nil},
		{"RFC 3339 iso-date with fraction", events.Record{"day": "2024-02-03T10:00:00.123Z"}, nil},
		{"absent optional fields", events.Record{"email": nil, "tags": nil, "address": nil}, nil},
		{"missing required", events.Record{"total": nil}, []string{"total:required"}},
		{"missing key", events.Record{"id": nil}, []string{"id:required"}},
		{"string for number", events.Record{"total": "12"}, []string{"total:type"}},
		{"Go int for number", events.Record{"total": 12}, []string{"total:type"}},
		{"NaN for number", events.Record{"total": math.NaN()}, []string{"total:type"}},
		{"below min", events.Record{"total": -0.5}, []string{"total:min"}},
		{"above max", events.Record{"total": 1000.5}, []string{"total:max"}},
		{"bounds inclusive", events.Record{"total": 1000.0}, nil},
		{"not in string enum", events.Record{"status": "lost"}, []string{"status:enum"}},
		{"not in number enum", events.Record{"priority": 4.0}, []string{"priority:enum"}},
		{"empty string: minLength and pattern", events.Record{"userId": ""}, []string{"userId:minLength", "userId:pattern"}},
		{"too long string", events.Record{"userId": "u12345678"}, []string{"userId:maxLength"}},
		{"length in runes", events.Record{"initials": "äöüß"}, []string{"initials:maxLength"}},
		{"off pattern", events.Record{"userId": "x1"}, []string{"userId:pattern"}},
		{"too many elements", events.Record{"tags": []any{1.0, 2.0, 3.0, 4.0}}, []string{"tags:maxLength"}},
		{"object for array", events.Record{"tags": map[string]any{}}, []string{"tags:type"}},
		{"string for object", events.Record{"address": "x"}, []string{"address:type"}},
		{"string for boolean", events.Record{"gift": "yes"}, []string{"gift:type"}},
		{"not a date", events.Record{"due": "yesterday"}, []string{"due:type"}},
		{"boolean for date", events.Record{"due": true}, []string{"due:type"}},
		{"email with name", events.Record{"email": "Ann <ann@example.com>"}, []string{"email:format"}},
		{"not an email", events.Record{"email": "ann"}, []string{"email:format"}},
		{"relative url", events.Record{"site": "example.com/x"}, []string{"site:format"}},
		{"impossible iso-date", events.Record{"day": "2024-02-30"}, []string{"day:format"}},
		{"unknown field", events.Record{"extra": 1.0}, []string{"extra:unknown_field"}},
		{"underscore field", events.Record{"_extra": 1.0}, []string{"_extra:unknown_field"}},
		{"everything at once", events.Record{
			"total": "x", "userId": nil, "status": "lost", "tags": []any{1.0, 2.0, 3.0, 4.0},
			"email": "no", "extra": true, "due": "no",
		}, []string{"due:type", "email:format", "extra:unknown_field", "status:enum", "tags:maxLength", "total:type", "userId:required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := validOrder()
			for k, v := range tt.change {
				if v == nil {
					delete(rec, k)
				} else {
					rec[k] = v
				}
			}
			if got := issueList(t, s.validate(rec)); !slices.Equal(got, tt.want) {
				t.Fatalf("issues = %v, want %v", got, tt.want)
			}
		})
	}
}

// Issue 9 case 9: a string that is no date was reported as "must be a
// date…, not a string".
func TestValidateInvalidDateMessage(t *testing.T) {
	s := mustCompile(t, ordersDef())
	rec := validOrder()
	rec["due"] = "2024-13-45"
	issues := s.validate(rec)
	want := `"2024-13-45" is not a valid date (want an ISO-8601 date like 2006-01-02 or 2006-01-02T15:04:05Z, or unix milliseconds)`
	if len(issues) != 1 || issues[0].Field != "due" || issues[0].Code != "type" || issues[0].Message != want {
		t.Fatalf("issues = %+v, want one due:type issue %q", issues, want)
	}
}

func TestValidateNullIsMissing(t *testing.T) {
	s := mustCompile(t, ordersDef())
	rec := validOrder()
	rec["total"] = nil
	rec["email"] = nil
	if got := issueList(t, s.validate(rec)); !slices.Equal(got, []string{"total:required"}) {
		t.Fatalf("issues = %v", got)
	}
}

func TestValidateIsDeterministic(t *testing.T) {
	s := mustCompile(t, ordersDef())
	rec := events.Record{"a": 1.0, "b": 2.0, "c": 3.0, "total": "x", "userId": 5.0, "status": true}
	first := s.validate(rec)
	for range 50 {
		if got := s.validate(rec); !reflect.DeepEqual(got, first) {
			t.Fatalf("validate is not deterministic:\n%v\n%v", got, first)
		}
	}
	if !slices.IsSortedFunc(first, func(a, b events.Issue) int { return strings.Compare(a.Field+"\x00"+a.Code, b.Field+"\x00"+b.Code) }) {
		t.Fatalf("issues not sorted: %v", first)
	}
}

func TestPrepareInsertFillsDefaultsAndGeneratedFields(t *testing.T) {
	s := mustCompile(t, ordersDef())
	now := time.UnixMilli(1_700_000_000_123)
	var asked []string
	next := func(field string) float64 { asked = append(asked, field); return 42 }
	in := events.Record{"userId": "u1", "total": 10.0, "status": nil}
	before, _ := json.Marshal(in)

	out, e := s.prepareInsert(in, next, now)
	if e != nil {
		t.Fatalf("prepareInsert: %v", e)
	}
	if after, _ := json.Marshal(in); string(after) != string(before) {
		t.Fatalf("input mutated: %s, was %s", after, before)
	}
	if !slices.Equal(asked, []string{"id"}) {
		t.Fatalf("nextAutoinc asked for %v", asked)
	}
	ref, err := uuid.Parse(out["ref"].(string))
	if err != nil || ref.Version() != 4 {
		t.Fatalf("ref = %v (%v), want a v4 uuid", out["ref"], err)
	}
	slug := out["slug"].(string)
	if len(slug) != cuidLen || slug[0] != 'c' {
		t.Fatalf("slug = %q, want a 25-character cuid", slug)
	}
	want := events.Record{
		"id": 42.0, "ref": out["ref"], "slug": slug, "createdTs": 1_700_000_000_123.0,
		"userId": "u1", "total": 10.0, "status": "pending", "gift": false,
		"address": map[string]any{"country": "NL", "lines": []any{"a"}}, "tags": []any{},
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("out = %v\nwant  %v", out, want)
	}

	// Defaults are copied: changing one stored record's object must not
	// change the default of the next.
	out["address"].(map[string]any)["country"] = "BE"
	out["address"].(map[string]any)["lines"].([]any)[0] = "z"
	out2, e := s.prepareInsert(events.Record{"userId": "u1", "total": 1.0}, next, now)
	if e != nil {
		t.Fatal(e)
	}
	if got := out2["address"]; !reflect.DeepEqual(got, map[string]any{"country": "NL", "lines": []any{"a"}}) {
		t.Fatalf("default changed through a stored record: %v", got)
	}
}

func TestPrepareInsertKeepsGivenValues(t *testing.T) {
	s := mustCompile(t, ordersDef())
	in := events.Record{"id": 5.0, "ref": "mine", "slug": "s", "createdTs": 3.0, "userId": "u1", "total": 1.0,
		"status": "shipped", "address": map[string]any{"nested": []any{1.0}}}
	out, e := s.prepareInsert(in, func(string) float64 { t.Fatal("nextAutoinc called for a given id"); return 0 }, time.Now())
	if e != nil {
		t.Fatal(e)
	}
	for _, f := range []string{"id", "ref", "slug", "createdTs", "status", "address"} {
		if !reflect.DeepEqual(out[f], in[f]) {
			t.Errorf("%s = %v, want the given %v", f, out[f], in[f])
		}
	}
	// The stored record shares no objects with the request.
	out["address"].(map[string]any)["nested"].([]any)[0] = 9.0
	if in["address"].(map[string]any)["nested"].([]any)[0] != 1.0 {
		t.Fatal("prepareInsert output shares nested values with its input")
	}
}

func TestPrepareInsertRejects(t *testing.T) {
	s := mustCompile(t, ordersDef())
	tests := []struct {
		name string
		rec  events.Record
		want []string
	}{
		{"meta fields", events.Record{"userId": "u1", "total": 1.0, events.FieldVersion: 1.0, events.FieldCreatedAt: 1.0}, []string{"_createdAt:reserved_field", "_version:reserved_field"}},
		{"underscore field", events.Record{"userId": "u1", "total": 1.0, "_x": 1.0}, []string{"_x:reserved_field"}},
		{"unknown field", events.Record{"userId": "u1", "total": 1.0, "colour": "red"}, []string{"colour:unknown_field"}},
		{"missing required", events.Record{}, []string{"total:required", "userId:required"}},
		{"all at once", events.Record{"_version": 2.0, "x": 1.0, "total": -1.0, "status": "lost"},
			[]string{"_version:reserved_field", "status:enum", "total:min", "userId:required", "x:unknown_field"}},
		{"bad key given", events.Record{"id": "seven", "userId": "u1", "total": 1.0}, []string{"id:type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := json.Marshal(tt.rec)
			out, e := s.prepareInsert(tt.rec, func(string) float64 { return 1 }, time.Now())
			if out != nil || e == nil {
				t.Fatalf("prepareInsert = %v, %v; want an error", out, e)
			}
			if !errors.Is(e, events.ErrValidation) {
				t.Fatalf("err = %v, want validation", e)
			}
			if got := issueList(t, e.Issues); !slices.Equal(got, tt.want) {
				t.Fatalf("issues = %v, want %v", got, tt.want)
			}
			if after, _ := json.Marshal(tt.rec); string(after) != string(before) {
				t.Fatalf("input mutated: %s, was %s", after, before)
			}
		})
	}
}

func TestCheckChanges(t *testing.T) {
	s := mustCompile(t, ordersDef())
	tests := []struct {
		name    string
		changes events.Record
		want    []string
	}{
		{"none", nil, nil},
		{"known fields", events.Record{"total": 3.0, "email": nil}, nil},
		{"unknown field", events.Record{"colour": "red"}, []string{"colour:unknown_field"}},
		{"meta field", events.Record{events.FieldUpdatedAt: 1.0}, []string{"_updatedAt:reserved_field"}},
		{"key", events.Record{"id": 8.0}, []string{"id:immutable_key"}},
		{"all at once", events.Record{"id": 1.0, "_version": 1.0, "zz": 1.0, "total": 1.0},
			[]string{"_version:reserved_field", "id:immutable_key", "zz:unknown_field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := issueList(t, s.checkChanges(tt.changes)); !slices.Equal(got, tt.want) {
				t.Fatalf("issues = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckIncrement(t *testing.T) {
	s := mustCompile(t, ordersDef())
	tests := []struct {
		name string
		inc  map[string]float64
		want []string
	}{
		{"none", nil, nil},
		{"number field", map[string]float64{"total": 2, "priority": -1}, nil},
		{"unknown field", map[string]float64{"points": 1}, []string{"points:unknown_field"}},
		{"string field", map[string]float64{"userId": 1}, []string{"userId:type"}},
		{"date field", map[string]float64{"due": 1}, []string{"due:type"}},
		{"key", map[string]float64{"id": 1}, []string{"id:immutable_key"}},
		{"meta field", map[string]float64{events.FieldVersion: 1}, []string{"_version:reserved_field"}},
		{"infinite amount", map[string]float64{"total": math.Inf(1)}, []string{"total:type"}},
		{"all at once", map[string]float64{"id": 1, "gift": 1, "x": 1, "total": 1}, []string{"gift:type", "id:immutable_key", "x:unknown_field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := issueList(t, s.checkIncrement(tt.inc)); !slices.Equal(got, tt.want) {
				t.Fatalf("issues = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	s := mustCompile(t, ordersDef())
	tests := []struct {
		name string
		key  any
		ok   bool
	}{
		{"number", 7.0, true},
		{"string", "a", true},
		{"missing", nil, false},
		{"boolean", true, false},
		{"Go int", 7, false},
		{"NaN", math.NaN(), false},
		{"object", map[string]any{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := events.Record{"total": 1.0}
			if tt.key != nil {
				rec["id"] = tt.key
			}
			got, e := s.keyOf(rec)
			if tt.ok {
				if e != nil || got != tt.key {
					t.Fatalf("keyOf = %v, %v; want %v", got, e, tt.key)
				}
				return
			}
			if got != nil || !errors.Is(e, events.ErrValidation) {
				t.Fatalf("keyOf = %v, %v; want a validation error", got, e)
			}
			if issues := issueList(t, e.Issues); !slices.Equal(issues, []string{"id:key"}) {
				t.Fatalf("issues = %v", issues)
			}
		})
	}
}

func TestUniqueFields(t *testing.T) {
	def := ordersDef()
	def.Schema["email"] = events.FieldDef{Type: events.TypeString, Unique: true}
	if got := mustCompile(t, def).uniqueFields(); !slices.Equal(got, []string{"email", "ref"}) {
		t.Fatalf("uniqueFields = %v", got)
	}
	if got := mustCompile(t, simpleDef(nil)).uniqueFields(); got != nil {
		t.Fatalf("uniqueFields = %v, want none", got)
	}
}

func TestNewCUID(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	seen := map[string]bool{}
	for range 1000 {
		id := newCUID(now)
		if len(id) != cuidLen || id[0] != 'c' || strings.Trim(id, base36) != "" {
			t.Fatalf("cuid %q is not 'c' and 24 base-36 characters", id)
		}
		if want := "c" + "loyw3v28"; id[:1+cuidTimeLen] != want {
			t.Fatalf("cuid %q does not start with the time %q", id, want)
		}
		if seen[id] {
			t.Fatalf("cuid %q generated twice", id)
		}
		seen[id] = true
	}
	if later := newCUID(now.Add(time.Hour)); later[:1+cuidTimeLen] <= "cloyw3v28" {
		t.Fatalf("a later cuid %q does not sort after the earlier time", later)
	}
}
