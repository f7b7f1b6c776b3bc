package events

// Caps of the command contract. A request past one is refused with
// too_large (CodeTooLarge) naming the cap, before anything applies, so no
// input can make the store's single writer stall or a reply undeliverable.
const (
	// MaxHeaderBytes caps all the headers of a command together (names and
	// values).
	MaxHeaderBytes = 64 << 10
	// MaxCommandIDBytes caps Storeloop-Command-Id.
	MaxCommandIDBytes = 256
	// MaxCausalIDBytes caps Storeloop-Correlation-Id and
	// Storeloop-Causation-Id, which are copied into every event's meta.
	MaxCausalIDBytes = 1024
	// MaxRuleIDBytes caps Storeloop-Rule, copied into meta.ruleId.
	MaxRuleIDBytes = 256

	// MaxTxReads caps the reads of one transaction.
	MaxTxReads = 1000
	// MaxTxQueryReads caps the queryReads of one transaction, and
	// MaxTxQueryReadRecords the records they list together.
	MaxTxQueryReads       = 1000
	MaxTxQueryReadRecords = 10000
)

// MaxBatchCommands caps the commands of one store.batch.
const MaxBatchCommands = 256
