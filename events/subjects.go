package events

import (
	"fmt"
	"strings"
	"time"
)

const (
	// DefaultStream is the JetStream stream that holds every event.
	DefaultStream = "STORELOOP"
	// DefaultCommandPrefix is the first token of command subjects.
	DefaultCommandPrefix = "store"

	// EventSubjectPrefix is the first token of every event subject.
	EventSubjectPrefix = "bucket"
	// SchemaSubjectPrefix is where bucket definitions are appended, in the
	// same stream as the events so that replay sees them in order.
	SchemaSubjectPrefix = "storeloop.schema"

	// DefaultDeadLetterStream holds the events rule sets gave up on. The
	// store node creates it with exactly DeadLetterSubjectPrefix.> as its
	// subjects: no other role may create a stream, which could capture
	// commands and replies.
	DefaultDeadLetterStream = "STORELOOP_DLQ"
	// DeadLetterSubjectPrefix starts every dead-letter subject
	// (storeloop.dlq.<ruleSet>.<reason>).
	DeadLetterSubjectPrefix = "storeloop.dlq"

	// TrustLockConsumer is the durable consumer of the event stream a store
	// node holds while it adds its key to the stream's trusted keys (a
	// stream update has no compare-and-set). Only the store may create it.
	TrustLockConsumer = "storeloop-trust-lock"

	// RuleStateBucket and CascadeBucket are the KV buckets of rule budgets
	// (quarantine states; rule writes per correlation id). The store node
	// creates them, for the reason it creates the dead-letter stream; rule
	// nodes read and write their keys.
	RuleStateBucket = "storeloop_rule_state"
	CascadeBucket   = "storeloop_cascades"
	// RulesBucket holds the deployed versions of rule sets (`storeloop
	// rules deploy`, made by an admin); rule nodes read it.
	RulesBucket = "storeloop_rules"
	// TemporalBucket holds the partial matches and pending deadlines of
	// temporal rules (absence, count, sequence), keyed by rule set, rule
	// and match key. The store node creates it; rule nodes read and write
	// its keys.
	TemporalBucket = "storeloop_temporal"
)

// CascadeWindow is how long a cascade counter lives after its last change.
const CascadeWindow = time.Hour

// TemporalStateTTL is how long a key of TemporalBucket lives after its
// last change: a day past the longest window of a temporal rule, so a
// pending deadline fires first, and the keys of matches long done go.
const TemporalStateTTL = 31 * 24 * time.Hour

// Op is a mutation type, the last token of an event subject.
type Op string

const (
	OpInserted Op = "inserted"
	OpUpdated  Op = "updated"
	OpDeleted  Op = "deleted"
)

// Valid reports whether op is one of the three event types.
func (op Op) Valid() bool {
	return op == OpInserted || op == OpUpdated || op == OpDeleted
}

// MaxBucketNameLen is the longest bucket name accepted.
const MaxBucketNameLen = 64

// ValidBucketName reports whether name can be a bucket name: one NATS subject
// token of letters, digits, '_' and '-', at most MaxBucketNameLen bytes.
// A loop, not a regular expression: every decoded event is checked (a
// replay's hot path).
func ValidBucketName(name string) bool {
	if len(name) == 0 || len(name) > MaxBucketNameLen {
		return false
	}
	for i := range len(name) {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// EventSubject returns bucket.<bucket>.<op>.
func EventSubject(bucket string, op Op) string {
	return EventSubjectPrefix + "." + bucket + "." + string(op)
}

// SchemaSubject returns the subject a bucket's definition is appended on.
func SchemaSubject(bucket string) string { return SchemaSubjectPrefix + "." + bucket }

// ParseEventSubject splits bucket.<bucket>.<op>.
func ParseEventSubject(subject string) (bucket string, op Op, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 3 || parts[0] != EventSubjectPrefix || !ValidBucketName(parts[1]) || !Op(parts[2]).Valid() {
		return "", "", fmt.Errorf("events: %q is not an event subject (want bucket.<bucket>.<inserted|updated|deleted>)", subject)
	}
	return parts[1], Op(parts[2]), nil
}

// Command names, the last token of command subjects.
const (
	CmdDefine    = "define"
	CmdBuckets   = "buckets"
	CmdInsert    = "insert"
	CmdGet       = "get"
	CmdUpdate    = "update"
	CmdUpsert    = "upsert"
	CmdDelete    = "delete"
	CmdQuery     = "query"
	CmdCount     = "count"
	CmdAggregate = "aggregate"
	CmdTx        = "tx"
	CmdStatus    = "status"
	// CmdBatch carries many independent writes in one request (extension,
	// see BatchRequest).
	CmdBatch = "batch"
)

// Commands lists every command name, in documentation order.
var Commands = []string{CmdDefine, CmdBuckets, CmdInsert, CmdGet, CmdUpdate, CmdUpsert,
	CmdDelete, CmdQuery, CmdCount, CmdAggregate, CmdTx, CmdStatus, CmdBatch, CmdSnapshot, CmdSnapshots, CmdWatch}

// IsMutation reports whether cmd writes: the commands that append events,
// carry a Storeloop-Command-Id and are safe to send again with the same id.
// A batch is not one: each of its commands carries its own id.
func IsMutation(cmd string) bool {
	switch cmd {
	case CmdDefine, CmdInsert, CmdUpdate, CmdUpsert, CmdDelete, CmdTx:
		return true
	}
	return false
}

// CommandSubject returns <prefix>.<cmd>.
func CommandSubject(prefix, cmd string) string { return prefix + "." + cmd }

// FilterCovers reports whether filter a matches every subject that filter b
// matches, with NATS wildcards ('*' one token, '>' the rest). For a concrete
// subject b it is plain subject matching.
func FilterCovers(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, t := range at {
		if t == ">" {
			return len(bt) > i
		}
		if i >= len(bt) || bt[i] == ">" {
			return false
		}
		if t != "*" && (bt[i] == "*" || t != bt[i]) {
			return false
		}
	}
	return len(at) == len(bt)
}
