package events

// BatchRequest is the body of store.batch: independent writes applied in
// one group commit, each with its own command id and its own result. It is
// not a transaction: a command that fails changes nothing and the others
// still apply. At most MaxBatchCommands commands.
type BatchRequest struct {
	Commands []BatchCommand `json:"commands"`
}

// BatchCommand is one write of a batch. Cmd is insert, update, upsert,
// delete or tx; the fields after the causal ones are those of the matching
// request (a field the command does not take is bad_request). The causal
// fields stand in for the headers of a standalone command: each one set
// here overrides the batch request's header of the same meaning for this
// command alone. The batch's own Storeloop-Command-Id is refused: only
// commands are idempotent, each by its CommandID.
type BatchCommand struct {
	Cmd string `json:"cmd"`

	CommandID     string `json:"commandId,omitempty"`     // Storeloop-Command-Id
	CorrelationID string `json:"correlationId,omitempty"` // Storeloop-Correlation-Id
	CausationID   string `json:"causationId,omitempty"`   // Storeloop-Causation-Id
	Hop           *int   `json:"hop,omitempty"`           // Storeloop-Hop
	Rule          string `json:"rule,omitempty"`          // Storeloop-Rule
	RuleVersion   int    `json:"ruleVersion,omitempty"`   // Storeloop-Rule-Version
	// TraceParent and TraceState are the command's own W3C trace context
	// (traceparent, tracestate): its events continue that trace instead of
	// the batch request's.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`

	Bucket        string             `json:"bucket,omitempty"`
	Key           any                `json:"key,omitempty"`
	Record        Record             `json:"record,omitempty"`
	Changes       Record             `json:"changes,omitempty"`
	Increment     map[string]float64 `json:"increment,omitempty"`
	ExpectVersion *int64             `json:"expectVersion,omitempty"`
	Ops           []TxOp             `json:"ops,omitempty"`
	Reads         []TxRead           `json:"reads,omitempty"`
	QueryReads    []TxQueryRead      `json:"queryReads,omitempty"`
}

// BatchResult is the result of store.batch: one reply per command, in the
// order of the request, each {"result":…} or {"error":…} exactly as the
// command alone would have been answered.
type BatchResult struct {
	Results []Reply `json:"results"`
}
