package events

import "time"

// Leadership of a stream among several store nodes (see docs/protocol.md,
// "Leader and standby").
const (
	// LeaderSubject is where a store node that has just acquired the lease
	// appends its leader-epoch marker, in the stream, before it serves:
	// every append of a deposed leader then fails its expected last
	// sequence. The marker is not a bucket event: replay skips it and rule
	// nodes (filtering bucket.>) never see it.
	LeaderSubject = "storeloop.leader"

	// LeaseBucket is the JetStream key-value bucket holding the leases,
	// one key per stream (the stream's name).
	LeaseBucket = "storeloop_leader"

	// CmdNodes is the subject suffix (<prefix>.nodes) every store node of a
	// stream answers, leader and standbys alike, with its NodeStatus: a
	// request gathers one reply per node. It is not a command (no service
	// endpoint, nothing stale: only the node's own status).
	CmdNodes = "nodes"
)

// Roles of a store node.
const (
	RoleLeader  = "leader"
	RoleStandby = "standby"
)

// Lease is the value of a stream's key in LeaseBucket: who holds it.
type Lease struct {
	Node    string    `json:"node"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

// LeaderMarker is the body of a message on LeaderSubject.
type LeaderMarker struct {
	Stream string `json:"stream"`
	Node   string `json:"node"`
	Host   string `json:"host"`
	// Epoch is the lease's revision in LeaseBucket when the node acquired
	// it: it grows with every acquisition.
	Epoch uint64 `json:"epoch"`
}

// NodeStatus is one store node's answer on <prefix>.nodes.
type NodeStatus struct {
	Node string `json:"node"`
	Host string `json:"host"`
	Role string `json:"role"` // RoleLeader or RoleStandby
	// LastSeq is the last stream sequence folded into the node's state;
	// Lag the events of the stream it has not folded yet.
	LastSeq uint64 `json:"lastSeq"`
	Lag     uint64 `json:"lag"`
	// Epoch and LeaseExpiry describe the lease as the node holds it (zero
	// for a standby): it serves until LeaseExpiry by its own clock.
	Epoch       uint64    `json:"epoch,omitempty"`
	LeaseExpiry time.Time `json:"leaseExpiry,omitzero"`
	Failovers   int64     `json:"failovers"` // times this node became leader
	Healthy     bool      `json:"healthy"`
	Reason      string    `json:"reason,omitempty"`
}
