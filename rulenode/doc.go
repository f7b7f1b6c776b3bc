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
//	insert:  {bucket, record}
//	update:  {bucket, key, changes?, increment?}
//	upsert:  {bucket, key, record?, increment?}
//	delete:  {bucket, key}
//	tx:      [insert | update | upsert | delete | forEach of those ...]   one atomic command
//	forEach: {query: {bucket, where?}, as: name, key?: field, do: [actions]}
//	publish: {subject, data?}    (not on bucket.>, storeloop.> or $...)
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
package rulenode
