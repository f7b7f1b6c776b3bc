// Package storenode is the store node: it owns the state of schema-defined
// buckets, validates commands, and is the only writer of the JetStream stream
// that records every mutation on bucket.<bucket>.<op>.
//
// A command arrives as a NATS request (served as a NATS micro service) and
// is decoded on the subscription's goroutine. Every command but status (which
// is answered at once) then goes through a pipeline of three goroutines, so
// that executing, waiting for the stream and syncing the disk overlap; reads
// ride along so that they are answered in order with the writes:
//
//	loop ──flights──▶ acker ──acked──▶ committer
//
// The loop is the single writer of the state: it takes every command waiting
// (up to a batch), executes them in order against the state, and publishes
// the batch's events pipelined, without waiting. The acker waits for the
// stream's acks of each batch in turn. The committer takes every batch
// acknowledged by then, makes them durable with one fsync (the group commit;
// see Syncer and EmbeddedSyncer), and only then replies. When a batch fails
// to commit, every command is refused at once while the loop rebuilds the
// state from the stream; the batches caught in the failure are then answered
// by what the stream holds (recover.go), and a rebuild that fails is retried
// with backoff.
//
// The state itself is the fold of the stream (package projections), so a
// restart replays the stream and rebuilds exactly what was acknowledged,
// command ids included (a command sent again returns its first reply). Each
// flight of events carries a signed proof (package events/proof); replay
// folds only messages proved by a trusted store and chained to the history
// it accepted, and quarantines the rest (integrity.go).
//
// The store never imports anything of the rules: rule nodes are ordinary
// clients.
package storenode
