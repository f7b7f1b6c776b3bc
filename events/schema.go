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
	// TTL, a Go duration ("30m"), expires a record that long after its last
	// write (_updatedAt) with a deleted event whose meta.reason is "ttl".
	TTL string `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	// MaxSize caps the number of records: the insert that exceeds it evicts
	// the oldest (_createdAt, then key) with deleted events whose
	// meta.reason is "maxSize", appended with the insert.
	MaxSize int `json:"maxSize,omitempty" yaml:"maxSize,omitempty"`
	// View makes the bucket a declared view of another bucket: read-only,
	// maintained by the store (see ViewDef).
	View *ViewDef `json:"view,omitempty" yaml:"view,omitempty"`
}

// BucketInfo is one element of the store.buckets result.
type BucketInfo struct {
	BucketDef
	Count int `json:"count"`
}
