package rulenode

// TemporalKey exposes the KV key of a temporal rule's state to the tests.
var TemporalKey = temporalKey
