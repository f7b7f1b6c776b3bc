// Package events is storeloop's wire contract: the subjects, headers, event
// bodies, command requests and replies, and error codes that the store node,
// the Go client, rule nodes and any client in another language exchange over
// NATS.
//
// The package is deliberately small and depends only on the standard library,
// so that everything else can import it. docs/protocol.md describes the same
// contract for readers who speak NATS without Go.
//
// # Events
//
// Every mutation is one JetStream message on [EventSubject] (bucket.<bucket>.<op>)
// carrying an [Event] as JSON. Bucket definitions are appended to the same
// stream on [SchemaSubject] so a restart can rebuild them. Each message
// carries a proof that the store wrote it (the Storeloop-Proof header, see
// package events/proof); the store and rule nodes ignore what fails it.
//
// # Commands
//
// Commands are NATS requests on <prefix>.<op> (prefix "store" by default) with
// a JSON body; the reply is a [Reply] holding either a result or an [*Error]
// with one of the [Code] values.
package events
