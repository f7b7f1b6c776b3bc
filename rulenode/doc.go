// Package rulenode is storeloop's rule engine: rule sets loaded from YAML
// (or written in Go), their CEL conditions and templated action values,
// the execution of actions against a [Store], and [Lint], which finds
// loops between rules before they run. The consumer loop that feeds events
// to the rules builds on this model.
//
// # Rule files
//
//	name: commerce          # the durable consumer; same name = shared work
//	maxHop: 16              # optional, 1..1000
//	maxWritesPerEvent: 100  # optional budgets, off unless set; a rule's own
//	maxCascadeWrites: 1000  # value wins (see [Budget]); over budget: dead letter
//	rate: 50                # "budget", 3 times a minute: quarantine
//	rules:
//	  - id: loyalty-on-ship
//	    on: [bucket.orders.updated]   # NATS filters: * one token, > the rest
//	    when: event.oldRecord.status != 'shipped' && event.newRecord.status == 'shipped'
//	    noLoop: false                 # true: ignore events this rule caused
//	    then:
//	      - upsert:
//	          bucket: loyalty
//	          key: ${event.newRecord.userId}
//	          record: { userId: "${event.newRecord.userId}" }
//	          increment: { points: "${int(event.newRecord.total / 10)}" }
//
// Actions, one kind each:
//
//	insert:  {bucket, record, onConflict?}
//	update:  {bucket, key, changes?, increment?, expectVersion?, onConflict?, onMissing?}
//	upsert:  {bucket, key, record?, increment?}
//	delete:  {bucket, key, expectVersion?, onConflict?}
//	tx:      [insert | update | upsert | delete | forEach of those ...]   one atomic command
//	tx:      {ops: [...as above], reads?: [{bucket, key, version}], onConflict?, onMissing?}
//	forEach: {query: {bucket, where?}, as: name, key?: field, do: [actions]}
//	publish: {subject, data?}    (not on bucket.>, store.> or the command prefix, storeloop.> or $...)
//	log:     {message, level?: debug|info|warn|error}
//
// A forEach inside a tx contributes its items' operations to the one
// transaction, so "archive every order of the user, then delete the
// session, all or nothing" is a tx holding a forEach and a delete
// (testdata/archive-on-delete.yaml). Loading is strict: unknown keys, a
// second action kind, bad bucket names, expressions that do not compile and
// files past the caps (1 MiB, 1000 rules, 100 actions per rule, forEach
// nested 4 deep, 4 KiB per expression) are [LoadErrors] naming file, line,
// rule and field.
//
// # Version checks and conflicts
//
// A rule decides from its event, and the store may have moved on by the
// time its writes arrive: another event of the same record was stored
// meanwhile, and is on its way to the rule too. expectVersion (a whole
// number or ${expr}) on an update or delete, also inside a tx, makes the
// write a conflict unless the record is still at that version; a tx's
// reads list records the decision rests on without writing them (version
// 0: absent). Usually the version is the event's own:
//
//	then:
//	  - tx:
//	      ops:
//	        - update:
//	            bucket: inventory
//	            key: ${event.key}
//	            changes: { reorder: true }
//	            expectVersion: ${event.newRecord._version}
//	        - insert: { bucket: reorderRequests, record: { sku: "${event.key}" } }
//
// onConflict says what a conflict answer does (an insert whose key is taken
// is one too), on the action, or on the tx for all its ops:
//
//   - skip, the default of an action with a version check: the rule stops
//     for this event without failing. Its earlier actions stay done, the
//     rest are not run, the event is acknowledged. Execute returns a
//     [SkipError]; a runner logs it at info and adds the span event
//     [SpanEventRuleSkipped]. The newer event is evaluated on its own, so
//     of several stale events only the newest commits.
//   - fail, the default otherwise: the rule fails and a runner
//     dead-letters the event at once (reason rejected).
//
// There is no retry: the command id of a write is fixed by rule, event and
// action path, and the store answers an id it has seen with its first
// reply, so the same event would meet the same conflict. For the same
// reason a redelivered event whose first attempt committed gets that
// attempt's success, not a conflict with the version it wrote itself.
//
// # Missing records
//
// An update of a record that does not exist is answered not_found (so is a
// tx holding one: it fails whole). onMissing, on the update or on the tx
// for all its ops, says what that does:
//
//   - retry, the default: a failure like any transient one, since the
//     record's insert may be on its way; a runner delivers the event again
//     after a backoff and dead-letters it (reason failed) after the last
//     delivery.
//   - skip: the rule stops for this event as under onConflict: skip (a
//     [SkipError]; a runner acknowledges the event, logs at info, adds
//     [SpanEventRuleSkipped] and counts a skip).
//   - fail: a runner dead-letters the event at once (reason rejected).
//
// skip is "update it if it exists":
//
//	then:
//	  - update:
//	      bucket: inventory
//	      key: ${event.newRecord.sku}
//	      increment: { quantity: "${-event.newRecord.qty}" }
//	      onMissing: skip
//
// onMissing is refused on insert, upsert (a missing record is inserted),
// delete (a missing record is answered deleted: false, not an error),
// publish and log, and on the ops of a tx.
//
// # Expressions and values
//
// Conditions and values are CEL. The variable event is the event body as on
// the wire (type, bucket, key, record / oldRecord / newRecord, meta); inside
// a forEach the loop variable holds the current record. In an action value a
// string that is exactly "${expr}" becomes the typed result; "${expr}" inside
// a longer string is interpolated as text, whole numbers without a fraction
// ("order 17", not "order 17.0"); "$${" writes a literal "${". Expressions
// are compiled once at load and every evaluation is bounded by [CostLimit]
// and the caller's context.
//
// # Numbers
//
// Records are JSON, so every number in an event or a queried record is a CEL
// double, whether it was written as 2598 or 25.5. Integer literals in
// expressions (10, 2) stay ints, and to let them mix with doubles the
// arithmetic operators + - * / % accept an int beside a double: the int is
// promoted and the result is a double. Comparisons mix freely too. Hence
// int(event.newRecord.total / 10) is 259 for a total of 2598, 2 for 25.5
// (int truncates toward zero) and 15 for 150; total * 2 and qty > 1 work as
// written. Two ints still give an int (7 / 2 is 3), and % on doubles is the
// floating-point remainder. Results leave CEL as JSON values: every number,
// int or double, becomes a float64.
//
// # Action paths and idempotency
//
// Each Store call made by [Rule.Execute] carries, in its context, an action
// path ([ActionPath]): the index of the action in then ("2"), followed
// inside a forEach by the item and the index of the sub-action ("3.0.1").
// The item is named by its position, or, when the forEach has key: field,
// by that field's value ("3.n:17.0"), which stays the same when a retry's
// query returns fewer items because the first attempt already removed some.
// Running a rule again for the same event makes the same calls with the
// same paths, so the caller derives an idempotent command id from rule set,
// rule id, event sequence and path. A tx is one call, at the tx's path.
//
// # Deployed rule sets
//
// A [Registry] keeps versions of rule sets in the JetStream key-value
// bucket [RulesBucket]; [Registry.Deploy] refuses what [Lint] and the loader
// refuse, and records for each version the stream sequence from which it
// handles events ([Deployment.From]). [NewDeployedRunner] runs a deployed
// set: each event goes to the version covering its sequence, new versions
// are picked up without a restart, and every runner of the set switches at
// the same sequence. [DryRun] evaluates a rule set on an event the way a
// runner does but collects its writes instead of sending them; [Shadow]
// uses it to compare a candidate with the deployed versions on recorded
// events. docs/protocol.md describes the layout and the switch protocol.
package rulenode
