// Package e2e holds storeloop's end-to-end tracing tests: the store →
// event → rule → store cycle followed across real processes (storenode and
// rulenode binaries, a real Jaeger) and, in process, the spans of a
// redelivered event and of a loop stopped at maxHop. It has no exported
// API; it exists so that these slow tests sit apart from the unit tests of
// package tracing.
package e2e
