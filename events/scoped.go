package events

import (
	"slices"
	"strings"
)

// Bucket-scoped command subjects (contract extension): the store serves
// <prefix>.<cmd>.<bucket> beside <prefix>.<cmd>, with the same body, so that
// NATS permissions can allow a user the commands on some buckets only. A
// transaction's subject names every bucket it touches, sorted and each
// once: <prefix>.tx.<b1>.<b2>... (ops, reads and query reads). The buckets
// of the subject must be those of the body, or the reply is bad_request.

// ScopedCommand reports whether cmd is also served on bucket-scoped
// subjects: the commands whose body names buckets. Batches, status,
// buckets and snapshots are not.
func ScopedCommand(cmd string) bool {
	switch cmd {
	case CmdDefine, CmdInsert, CmdGet, CmdUpdate, CmdUpsert, CmdDelete, CmdQuery, CmdCount, CmdAggregate, CmdTx:
		return true
	}
	return false
}

// ScopedSubject returns <prefix>.<cmd>.<bucket>..., the buckets sorted and
// each once.
func ScopedSubject(prefix, cmd string, buckets ...string) string {
	return prefix + "." + ScopedName(cmd, buckets...)
}

// ScopedName is the scoped subject of cmd on buckets below the prefix:
// <cmd>.<bucket>..., the buckets sorted and each once.
func ScopedName(cmd string, buckets ...string) string {
	var b strings.Builder
	b.WriteString(cmd)
	for _, bucket := range sortedBuckets(buckets) {
		b.WriteByte('.')
		b.WriteString(bucket)
	}
	return b.String()
}

// Buckets returns the buckets r touches (ops, reads, query reads), sorted
// and each once: the scope of its subject.
func (r *TxRequest) Buckets() []string {
	out := make([]string, 0, len(r.Ops))
	for _, op := range r.Ops {
		out = append(out, op.Bucket)
	}
	for _, rd := range r.Reads {
		out = append(out, rd.Bucket)
	}
	for _, q := range r.QueryReads {
		out = append(out, q.Bucket)
	}
	return sortedBuckets(out)
}

func sortedBuckets(buckets []string) []string {
	if len(buckets) < 2 {
		return buckets
	}
	out := slices.Clone(buckets)
	slices.Sort(out)
	return slices.Compact(out)
}
