package events

// Aggregate functions of a view field (ViewField.Fn).
const (
	ViewCount = "count"
	ViewSum   = "sum"
	ViewMin   = "min"
	ViewMax   = "max"
	ViewAvg   = "avg"
	ViewLast  = "last"
)

// ViewDef declares a view: one record per distinct value of GroupBy among
// the records of From that match Where, keyed by that value, with one field
// per entry of Fields.
type ViewDef struct {
	From    string               `json:"from" yaml:"from"`
	GroupBy string               `json:"groupBy" yaml:"groupBy"`
	Where   Where                `json:"where,omitempty" yaml:"where,omitempty"`
	Fields  map[string]ViewField `json:"fields" yaml:"fields"`
}

// ViewField is one aggregate of a view: Fn over the source field Field
// (count takes none).
type ViewField struct {
	Fn    string `json:"fn" yaml:"fn"`
	Field string `json:"field,omitempty" yaml:"field,omitempty"`
}
