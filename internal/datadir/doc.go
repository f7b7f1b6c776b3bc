// Package datadir owns a store node's own files in its data directory: the
// writer lock (one store node per directory, held for the life of the
// process) and the durable high-water mark of what the node acknowledged,
// which lets it tell lost events from events that never existed.
package datadir
