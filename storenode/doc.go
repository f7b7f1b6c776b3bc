// Package storenode is the store node: it owns the state of schema-defined
// buckets, validates commands, and is the only writer of the JetStream stream
// that records every mutation on bucket.<bucket>.<op>.
//
// A command arrives as a NATS request (served as a NATS micro service), is
// validated against the current state, turned into events, and acknowledged
// only after its events are stored in the stream — fsynced, in the default
// embedded setup. Concurrent commands are group-committed: one loop takes
// every command waiting, appends all their events in one pipelined batch with
// one fsync, then replies to all of them. The state itself is the fold of the
// stream (package projections), so a restart replays the stream and rebuilds
// exactly what was acknowledged.
//
// The store never imports anything of the rules: rule nodes are ordinary
// clients.
package storenode
