package events

import "encoding/json"

// Where is a query filter: field → value (equality) or field → operator
// object ($eq $neq $gt $gte $lt $lte $in $nin $contains $startsWith
// $endsWith $exists $between), plus $or / $and arrays of Where at the top.
type Where = map[string]any

// Request bodies, one per command. Unknown fields are rejected with
// bad_request.
type (
	DefineRequest = BucketDef

	BucketsRequest struct{}

	InsertRequest struct {
		Bucket string `json:"bucket"`
		Record Record `json:"record"`
	}

	GetRequest struct {
		Bucket string `json:"bucket"`
		Key    any    `json:"key"`
	}

	UpdateRequest struct {
		Bucket        string             `json:"bucket"`
		Key           any                `json:"key"`
		Changes       Record             `json:"changes,omitempty"`
		Increment     map[string]float64 `json:"increment,omitempty"`
		ExpectVersion *int64             `json:"expectVersion,omitempty"`
	}

	UpsertRequest struct {
		Bucket    string             `json:"bucket"`
		Key       any                `json:"key"`
		Record    Record             `json:"record,omitempty"`
		Increment map[string]float64 `json:"increment,omitempty"`
	}

	DeleteRequest struct {
		Bucket        string `json:"bucket"`
		Key           any    `json:"key"`
		ExpectVersion *int64 `json:"expectVersion,omitempty"`
	}

	QueryRequest struct {
		Bucket string `json:"bucket"`
		Where  Where  `json:"where,omitempty"`
		Limit  int    `json:"limit,omitempty"`
		After  string `json:"after,omitempty"`
	}

	CountRequest struct {
		Bucket string `json:"bucket"`
		Where  Where  `json:"where,omitempty"`
	}

	AggregateRequest struct {
		Bucket string `json:"bucket"`
		Fn     string `json:"fn"`
		Field  string `json:"field"`
		Where  Where  `json:"where,omitempty"`
	}

	// TxOp is one operation of a transaction: Op is insert, update, upsert
	// or delete and the other fields are those of the matching request.
	TxOp struct {
		Op            string             `json:"op"`
		Bucket        string             `json:"bucket"`
		Key           any                `json:"key,omitempty"`
		Record        Record             `json:"record,omitempty"`
		Changes       Record             `json:"changes,omitempty"`
		Increment     map[string]float64 `json:"increment,omitempty"`
		ExpectVersion *int64             `json:"expectVersion,omitempty"`
	}

	// TxRead is a version the caller based its decision on; a missing record
	// is version 0.
	TxRead struct {
		Bucket  string `json:"bucket"`
		Key     any    `json:"key"`
		Version int64  `json:"version"`
	}

	// TxQueryRead is a query result the caller based its decision on: the
	// keys and versions it saw. Any record added to or removed from the
	// result set, or changed, is a conflict.
	TxQueryRead struct {
		Bucket  string   `json:"bucket"`
		Where   Where    `json:"where,omitempty"`
		Records []TxRead `json:"records"`
	}

	TxRequest struct {
		Ops        []TxOp        `json:"ops"`
		Reads      []TxRead      `json:"reads,omitempty"`
		QueryReads []TxQueryRead `json:"queryReads,omitempty"`
	}
)

// Results.
type (
	DefineResult struct {
		Bucket string `json:"bucket"`
	}
	DeleteResult struct {
		Deleted bool `json:"deleted"`
	}
	QueryResult struct {
		Records    []Record `json:"records"`
		NextCursor string   `json:"nextCursor,omitempty"`
	}
	TxResult struct {
		Results []any `json:"results"`
	}
	// StatusResult reports the store node's progress (extension).
	StatusResult struct {
		LastSeq  uint64 `json:"lastSeq"`
		InFlight int    `json:"inFlight"`
		Healthy  bool   `json:"healthy"`
		Reason   string `json:"reason,omitempty"`
		// Quarantined counts the messages in the stream that are not the
		// store's own events (no valid proof, a broken chain, or not
		// decodable): skipped, never state. LastQuarantinedSeq is the
		// sequence of the last of them.
		Quarantined        int    `json:"quarantined,omitempty"`
		LastQuarantinedSeq uint64 `json:"lastQuarantinedSeq,omitempty"`
		// LostEvents counts the events found missing from the stream at
		// start and accepted with --accept-data-loss; LostRanges lists them.
		LostEvents uint64     `json:"lostEvents,omitempty"`
		LostRanges []SeqRange `json:"lostRanges,omitempty"`
	}

	// SeqRange is the stream sequences First through Last, inclusive.
	SeqRange struct {
		First uint64 `json:"first"`
		Last  uint64 `json:"last"`
	}
)

// Reply is the body of every command reply: exactly one of Result or Error.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}
