package auth

import (
	"fmt"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// Role is who a connection acts as.
type Role string

// The roles, each with its credentials file <role>.creds.
const (
	RoleStore    Role = "store"    // the store node: sole writer and administrator of the event stream
	RoleRuleNode Role = "rulenode" // rule nodes: commands, their durable consumers, dead letters
	RoleClient   Role = "client"   // applications and the CLI: commands, reading the stream
	RoleAdmin    Role = "admin"    // operators: everything
)

// Roles lists every role, in documentation order.
var Roles = []Role{RoleStore, RoleRuleNode, RoleClient, RoleAdmin}

// CredsFile is the name of a role's credentials file in an auth directory.
func (r Role) CredsFile() string { return string(r) + ".creds" }

// InboxPrefix is the reply-inbox prefix of role: its connections must use
// it (nats.CustomInboxPrefix), being allowed to subscribe only below it.
func InboxPrefix(r Role) string { return "_INBOX_" + string(r) }

// Defaults of the names the permissions are written for.
const (
	DefaultDeadLetterStream = events.DefaultDeadLetterStream
	DefaultDeadLetterPrefix = events.DeadLetterSubjectPrefix
)

// The KV buckets of rule budgets and temporal rules (package rulenode):
// the store node creates them; the rule nodes of a set with budgets or
// temporal rules read, write and watch their keys.
const (
	RuleStateBucket = events.RuleStateBucket
	CascadeBucket   = events.CascadeBucket
	TemporalBucket  = events.TemporalBucket
)

// config names the subjects and streams the permissions cover.
type config struct {
	prefix      string   // command subject prefix
	stream      string   // event stream
	dlqStream   string   // dead-letter stream
	dlqPrefix   string   // dead-letter subjects
	rulePublish []string // extra subjects rule `publish` actions may use
	ruleSets    []string // the rule sets rulenode.creds may run; none: any
	limits      Limits   // what the account and its users may take of the server
	keysFrom    string   // auth directory whose operator and account keys to reuse
	force       bool     // overwrite a non-empty directory

	scope *RuleSetScope // one rule set's commands only (WithRuleSetScope)
}

// Option changes what [Init] and [Rules] generate.
type Option func(*config) error

func newConfig(opts []Option) (*config, error) {
	c := &config{prefix: events.DefaultCommandPrefix, stream: events.DefaultStream,
		dlqStream: DefaultDeadLetterStream, dlqPrefix: DefaultDeadLetterPrefix, limits: DefaultLimits}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// token reports whether s is one literal subject token.
func token(s string) bool { return s != "" && !strings.ContainsAny(s, ".*> \t\r\n") }

// WithCommandPrefix writes the permissions for a store node started with
// --prefix (default "store").
func WithCommandPrefix(p string) Option {
	return func(c *config) error {
		if !token(p) {
			return fmt.Errorf("auth: command prefix %q: want one subject token", p)
		}
		c.prefix = p
		return nil
	}
}

// WithStream writes the permissions for an event stream other than STORELOOP.
func WithStream(name string) Option {
	return func(c *config) error {
		if !token(name) {
			return fmt.Errorf("auth: stream %q: want one subject token", name)
		}
		c.stream = name
		return nil
	}
}

// WithRulePublish lets rule nodes publish on these subjects (rule `publish`
// actions); by default they may publish nothing of their own. Subjects
// reserved by storeloop or NATS are refused.
func WithRulePublish(subjects ...string) Option {
	return func(c *config) error {
		for _, s := range subjects {
			first, _, _ := strings.Cut(s, ".")
			switch {
			case s == "" || strings.ContainsAny(s, " \t\r\n"):
				return fmt.Errorf("auth: rule publish subject %q is not a subject", s)
			case first == "*" || first == ">" || first == events.EventSubjectPrefix || first == "storeloop" ||
				first == c.prefix || strings.HasPrefix(first, "$") || strings.HasPrefix(first, "_INBOX"):
				return fmt.Errorf("auth: rule publish subject %q overlaps subjects reserved by storeloop or NATS", s)
			}
		}
		c.rulePublish = append(c.rulePublish, subjects...)
		return nil
	}
}

// WithRuleSets restricts rulenode.creds to the durable consumers of these
// rule sets: a rule node can then neither bind nor reconfigure another
// rule set's consumer, nor read the stream through other consumers; and
// client.creds may neither create, reconfigure nor pull from them. By
// default a rule node may run any rule set (and a client, whose ordered
// consumers have generated names, cannot be kept off a durable one whose
// name is not known).
func WithRuleSets(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if !token(n) {
				return fmt.Errorf("auth: rule set %q: want one subject token (a consumer name)", n)
			}
		}
		c.ruleSets = append(c.ruleSets, names...)
		return nil
	}
}

// WithKeysFrom makes [Init] reuse the operator and account keys of an
// existing auth directory: the account, and so the JetStream data stored
// under it, stays the same while every user is issued anew and the users of
// dir are revoked. This is how credentials are rotated.
func WithKeysFrom(dir string) Option {
	return func(c *config) error { c.keysFrom = dir; return nil }
}

// WithForce lets [Init] overwrite the files of a non-empty directory.
func WithForce() Option {
	return func(c *config) error { c.force = true; return nil }
}

// Permission is one role's rights: the subjects it may publish to and
// subscribe to (NATS wildcards), and whether it may reply to the requests
// it receives.
type Permission struct {
	Role      Role
	Publish   []string
	Subscribe []string
	Deny      []string // subjects refused to publish to, though Publish allows them
	Responses bool     // may publish one reply to each request it received
	Why       string
}

// Rules returns the permission table: every role's rights for the names
// the options set. It is what [Init] signs into the users' JWTs.
func Rules(opts ...Option) ([]Permission, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return c.rules(), nil
}

func (c *config) rules() []Permission {
	api := "$JS.API."
	s := c.stream
	// Reading the stream through ordered consumers (replay, tail, trace,
	// history), as the jetstream package does it.
	read := []string{
		api + "STREAM.INFO." + s,
		api + "CONSUMER.CREATE." + s + ".>",
		api + "CONSUMER.MSG.NEXT." + s + ".>",
	}
	cmds := c.prefix + ".>"
	return []Permission{{
		Role: RoleStore,
		Publish: append(append([]string{
			events.EventSubjectPrefix + ".>",
			events.SchemaSubjectPrefix + ".>",
			events.LeaderSubject,
			api + "INFO",
			api + "STREAM.CREATE." + s,
			api + "STREAM.UPDATE." + s,
			api + "STREAM.MSG.GET." + s,
			api + "DIRECT.GET." + s + ".>",
			api + "CONSUMER.INFO." + s + ".>",
			api + "CONSUMER.DELETE." + s + ".>",
			// It creates the dead-letter stream, so that no other role may
			// create a stream (which could capture commands and replies).
			api + "STREAM.INFO." + c.dlqStream,
			api + "STREAM.CREATE." + c.dlqStream,
			api + "STREAM.UPDATE." + c.dlqStream,
		}, append(read, kvStreams(RuleStateBucket, CascadeBucket, TemporalBucket)...)...), append(leaseRights(s), snapshotStore(events.SnapshotBucket(s))...)...),
		Subscribe: []string{cmds, "$SRV.>", InboxPrefix(RoleStore) + ".>"},
		Responses: true,
		Why:       "appends events, bucket definitions and leader markers, creates and replays its stream, holds its lease, creates the dead-letter stream and the KV buckets of rule budgets and temporal rules, serves the commands",
	}, {
		Role: RoleRuleNode,
		Publish: append(append(append(c.ruleNodeCommands(),
			c.ruleNodeDeadLetters(),
			api+"STREAM.INFO."+s,
			api+"STREAM.INFO."+c.dlqStream,
		), append(append(c.consumers(), budgetKV()...), registryKV()...)...), c.rulePublish...),
		Deny:      append(c.trustLock(), c.adminCommands()...),
		Subscribe: []string{InboxPrefix(RoleRuleNode) + ".>"},
		Why:       "calls commands, binds, consumes and acknowledges its durable consumer, appends dead letters, keeps budget counters, rule states and temporal matches (KV), reads deployed rule-set versions",
	}, {
		Role: RoleClient,
		Publish: append([]string{
			cmds,
			api + "INFO",
			api + "CONSUMER.INFO." + s + ".>",
			api + "CONSUMER.LIST." + s,
			api + "STREAM.MSG.GET." + s,
			api + "DIRECT.GET." + s + ".>",
		}, read...),
		Deny:      append(append(c.ruleSetConsumers(), c.trustLock()...), c.adminCommands()...),
		Subscribe: []string{InboxPrefix(RoleClient) + ".>"},
		Why:       "calls commands, reads the stream through ordered consumers, watches consumers settle",
	}, {
		Role:      RoleAdmin,
		Publish:   []string{">"},
		Subscribe: []string{">"},
		Why:       "everything: stream and dead-letter administration, any consumer",
	}}
}

// leaseRights let store nodes hold the lease of stream s in the lease
// bucket (created by the first of them): create and read the bucket,
// write and read the stream's key, and move the bucket's stream leader off
// the event stream leader's server (a leader stepdown of that stream only).
func leaseRights(s string) []string {
	kv := "KV_" + events.LeaseBucket
	return []string{
		"$JS.API.STREAM.CREATE." + kv,
		"$JS.API.STREAM.INFO." + kv,
		"$JS.API.STREAM.LEADER.STEPDOWN." + kv,
		"$JS.API.STREAM.MSG.GET." + kv,
		"$JS.API.DIRECT.GET." + kv + ".>",
		"$KV." + events.LeaseBucket + "." + s,
	}
}

// adminCommands are the commands only an admin may send: snapshots
// cost the store node a pause and an upload.
func (c *config) adminCommands() []string {
	return []string{c.prefix + "." + events.CmdSnapshot, c.prefix + "." + events.CmdSnapshots}
}

// snapshotStore is what the store node needs of the object store bucket
// holding its snapshots: create it, put, get, list and delete objects
// (the object store reads through ordered push consumers with flow
// control), and get an object's first chunk alone.
func snapshotStore(bucket string) []string {
	api, stream := "$JS.API.", "OBJ_"+bucket
	return []string{
		"$O." + bucket + ".>",
		"$JS.FC." + stream + ".>",
		api + "STREAM.INFO." + stream,
		api + "STREAM.CREATE." + stream,
		api + "STREAM.UPDATE." + stream,
		api + "STREAM.PURGE." + stream,
		api + "STREAM.MSG.GET." + stream,
		api + "DIRECT.GET." + stream, // a snapshot's first chunk: its header (store.snapshots)
		api + "DIRECT.GET." + stream + ".>",
		api + "CONSUMER.CREATE." + stream, api + "CONSUMER.CREATE." + stream + ".>",
		api + "CONSUMER.INFO." + stream + ".>",
		api + "CONSUMER.DELETE." + stream + ".>",
	}
}

// ruleSetConsumers are the API subjects that create, reconfigure or pull
// from the known rule sets' durable consumers: a client's reads go
// through consumers of its own.
func (c *config) ruleSetConsumers() []string {
	var out []string
	for _, n := range c.ruleSets {
		suffix := "." + c.stream + "." + n
		out = append(out, "$JS.API.CONSUMER.CREATE"+suffix, "$JS.API.CONSUMER.CREATE"+suffix+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE"+suffix, "$JS.API.CONSUMER.MSG.NEXT"+suffix)
	}
	return out
}

// budgetKV is what a rule node may do with the KV buckets of budgets:
// read and write keys, never create or change the buckets' streams (the
// store node creates them).
func budgetKV() []string {
	var out []string
	for _, b := range []string{RuleStateBucket, CascadeBucket, TemporalBucket} {
		api, s := "$JS.API.", "KV_"+b
		out = append(out, api+"STREAM.INFO."+s,
			api+"DIRECT.GET."+s+".>", api+"STREAM.MSG.GET."+s,
			api+"CONSUMER.CREATE."+s+".>", api+"CONSUMER.DELETE."+s+".>", "$KV."+b+".>")
	}
	return out
}

// kvStreams is what the store node may do with the streams of the named
// KV buckets: create them and keep their configuration right.
func kvStreams(buckets ...string) []string {
	var out []string
	for _, b := range buckets {
		s := "$JS.API.STREAM."
		out = append(out, s+"INFO.KV_"+b, s+"CREATE.KV_"+b, s+"UPDATE.KV_"+b)
	}
	return out
}

// registryKV is what a rule node may do with the rule-set versions of
// `storeloop rules deploy`: read them (admin deploys).
func registryKV() []string {
	api, s := "$JS.API.", "KV_"+events.RulesBucket
	return []string{api + "STREAM.INFO." + s, api + "DIRECT.GET." + s + ".>", api + "STREAM.MSG.GET." + s,
		api + "CONSUMER.CREATE." + s + ".>", api + "CONSUMER.DELETE." + s + ".>"}
}

// trustLock are the API subjects that create the store's trust lock
// consumer: another role holding it would keep store nodes from starting.
func (c *config) trustLock() []string {
	suffix := "." + c.stream + "." + events.TrustLockConsumer
	return []string{"$JS.API.CONSUMER.CREATE" + suffix, "$JS.API.CONSUMER.CREATE" + suffix + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE" + suffix}
}

// consumers is what a rule node may do with durable consumers of the
// stream: those of c.ruleSets, or any.
func (c *config) consumers() []string {
	names := c.ruleSets
	if len(names) == 0 {
		names = []string{"*"}
	}
	var out []string
	for _, n := range names {
		api := "$JS.API.CONSUMER."
		suffix := "." + c.stream + "." + n
		out = append(out,
			api+"CREATE"+suffix, api+"CREATE"+suffix+".>", // .> : with one filter subject in the name
			api+"INFO"+suffix, api+"MSG.NEXT"+suffix, "$JS.ACK"+suffix+".>")
	}
	return out
}
