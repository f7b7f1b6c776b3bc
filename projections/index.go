package projections

import "github.com/storeloop/storeloop/events"

// Index maps the values of one field to the keys of the records holding them.
// Values that are not strings, numbers or booleans (objects, arrays, null,
// a missing field) are not indexed.
type Index struct {
	Field   string
	byValue map[string]map[string]struct{}
}

// NewIndex returns an empty index on field.
func NewIndex(field string) *Index {
	return &Index{Field: field, byValue: map[string]map[string]struct{}{}}
}

// indexKey is the canonical form of an indexable value.
func indexKey(v any) (string, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return "b:true", true
		}
		return "b:false", true
	case string, float64:
		k, err := events.KeyString(x)
		return k, err == nil
	}
	return "", false
}

// Add records that the record under key has value.
func (ix *Index) Add(value any, key string) {
	vk, ok := indexKey(value)
	if !ok {
		return
	}
	set := ix.byValue[vk]
	if set == nil {
		set = map[string]struct{}{}
		ix.byValue[vk] = set
	}
	set[key] = struct{}{}
}

// Remove forgets that the record under key has value.
func (ix *Index) Remove(value any, key string) {
	vk, ok := indexKey(value)
	if !ok {
		return
	}
	if set := ix.byValue[vk]; set != nil {
		delete(set, key)
		if len(set) == 0 {
			delete(ix.byValue, vk)
		}
	}
}

// Equal returns the keys of the records whose field equals value.
func (ix *Index) Equal(value any) []string {
	vk, ok := indexKey(value)
	if !ok {
		return nil
	}
	set := ix.byValue[vk]
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}
