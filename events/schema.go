package events

// Field types of FieldDef.Type.
const (
	TypeString  = "string"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeObject  = "object"
	TypeArray   = "array"
	TypeDate    = "date" // an ISO-8601 string or unix milliseconds
)

// Generators of FieldDef.Generated.
const (
	GenAutoincrement = "autoincrement"
	GenUUID          = "uuid"
	GenCUID          = "cuid"
	GenTimestamp     = "timestamp"
)

// Formats of FieldDef.Format.
const (
	FormatEmail   = "email"
	FormatURL     = "url"
	FormatISODate = "iso-date"
)

// FieldDef describes one field of a bucket's schema.
type FieldDef struct {
	Type      string   `json:"type" yaml:"type"`
	Required  bool     `json:"required,omitempty" yaml:"required,omitempty"`
	Default   any      `json:"default,omitempty" yaml:"default,omitempty"`
	Generated string   `json:"generated,omitempty" yaml:"generated,omitempty"`
	Enum      []any    `json:"enum,omitempty" yaml:"enum,omitempty"`
	Min       *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max       *float64 `json:"max,omitempty" yaml:"max,omitempty"`
	MinLength *int     `json:"minLength,omitempty" yaml:"minLength,omitempty"`
	MaxLength *int     `json:"maxLength,omitempty" yaml:"maxLength,omitempty"`
	Pattern   string   `json:"pattern,omitempty" yaml:"pattern,omitempty"`
	Format    string   `json:"format,omitempty" yaml:"format,omitempty"`
	Unique    bool     `json:"unique,omitempty" yaml:"unique,omitempty"`
}

// BucketDef is the request of store.define and the definition a bucket keeps.
type BucketDef struct {
	Bucket  string              `json:"bucket" yaml:"bucket"`
	Key     string              `json:"key" yaml:"key"`
	Schema  map[string]FieldDef `json:"schema" yaml:"schema"`
	Indexes []string            `json:"indexes,omitempty" yaml:"indexes,omitempty"`
}

// BucketInfo is one element of the store.buckets result.
type BucketInfo struct {
	BucketDef
	Count int `json:"count"`
}
