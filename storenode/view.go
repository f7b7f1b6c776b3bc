package storenode

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
)

// issueView is the issue code of a problem with a view definition.
const issueView = "view"

// completeView checks the view of def against its source and fills in
// what the store derives: the key (the group-by field) and the schema (the
// group-by field's type, the aggregates' types). A definition that already
// gives a key or schema must give exactly those. Problems are validation
// errors; a source that is not defined is bucket_not_found.
func (n *Node) completeView(def *events.BucketDef) *events.Error {
	v := def.View
	var issues []events.Issue
	add := func(field, format string, args ...any) {
		issues = append(issues, events.Issue{Field: field, Code: issueView, Message: fmt.Sprintf(format, args...)})
	}
	if !events.ValidBucketName(def.Bucket) {
		return nil // compileSchema says why
	}
	src := n.state.Bucket(v.From)
	switch {
	case !events.ValidBucketName(v.From):
		add("view.from", "source %q is not a bucket name", v.From)
	case src == nil:
		return events.Errorf(events.CodeBucketNotFound, "view %s: source bucket %q is not defined", def.Bucket, v.From)
	case src.IsView():
		add("view.from", "source %q is a view: views are defined on buckets", v.From)
	case v.From == def.Bucket:
		add("view.from", "a view cannot be its own source")
	}
	if def.TTL != "" || def.MaxSize != 0 || len(def.Indexes) > 0 {
		add("view", "a view takes no ttl, maxSize or indexes")
	}
	if _, err := projections.CompileWhere(v.Where); err != nil {
		add("view.where", "%v", err)
	}
	if src != nil && len(issues) == 0 {
		issues = append(issues, checkViewFields(v, src.Def)...)
	}
	if len(issues) > 0 {
		sortIssues(issues)
		return &events.Error{Code: events.CodeValidation, Message: "invalid view definition", Issues: issues}
	}
	schema := map[string]events.FieldDef{}
	for f, typ := range projections.ViewFieldTypes(*v, src.Def) {
		schema[f] = events.FieldDef{Type: typ}
	}
	schema[v.GroupBy] = events.FieldDef{Type: schema[v.GroupBy].Type, Required: true}
	if (def.Key != "" && def.Key != v.GroupBy) || (def.Schema != nil && !reflect.DeepEqual(def.Schema, schema)) {
		return &events.Error{Code: events.CodeValidation, Message: "invalid view definition", Issues: []events.Issue{{Field: "view",
			Code: issueView, Message: "a view's key and schema are derived from its source: give neither (or exactly those)"}}}
	}
	def.Key, def.Schema = v.GroupBy, schema
	return nil
}

// checkViewFields checks the group-by field and the aggregates against the
// source's schema.
func checkViewFields(v *events.ViewDef, src events.BucketDef) []events.Issue {
	var issues []events.Issue
	add := func(field, format string, args ...any) {
		issues = append(issues, events.Issue{Field: field, Code: issueView, Message: fmt.Sprintf(format, args...)})
	}
	switch gb, ok := src.Schema[v.GroupBy]; {
	case v.GroupBy == "":
		add("view.groupBy", "groupBy is required")
	case !ok:
		add("view.groupBy", "%q is not a field of %s", v.GroupBy, src.Bucket)
	case gb.Type != events.TypeString && gb.Type != events.TypeNumber:
		add("view.groupBy", "%q is of type %s: group by a string or number field", v.GroupBy, gb.Type)
	}
	if len(v.Fields) == 0 {
		add("view.fields", "a view needs at least one field")
	}
	for _, name := range slices.Sorted(maps.Keys(v.Fields)) {
		f := v.Fields[name]
		path := "view.fields." + name
		if name == v.GroupBy || events.IsMetaField(name) || name == "" {
			add(path, "%q is the group-by field, a meta field or empty", name)
			continue
		}
		switch f.Fn {
		case events.ViewCount:
			if f.Field != "" {
				add(path, "count takes no field")
			}
			continue
		case events.ViewSum, events.ViewAvg, events.ViewMin, events.ViewMax, events.ViewLast:
		default:
			add(path, "fn %q is not count, sum, avg, min, max or last", f.Fn)
			continue
		}
		sf, ok := src.Schema[f.Field]
		switch {
		case !ok:
			add(path, "field %q is not a field of %s", f.Field, src.Bucket)
		case f.Fn != events.ViewLast && sf.Type != events.TypeNumber:
			add(path, "%s needs a number field, %q is %s", f.Fn, f.Field, sf.Type)
		}
	}
	return issues
}

// writable refuses writes to a view: the store maintains it.
func writable(b *projections.Bucket) *events.Error {
	if b.IsView() {
		return events.Errorf(events.CodeBadRequest, "%s is a view of %s: it is read-only", b.Def.Bucket, b.Def.View.From)
	}
	return nil
}
