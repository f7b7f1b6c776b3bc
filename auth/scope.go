package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// RuleSetScope is what the credentials of one rule set may send, read
// from its rules (rulenode's RuleSet.Needs): with [WithRuleSetScope] a
// rule node user may bind only the set's durable consumer, send only these
// commands, on their bucket-scoped subjects, and dead-letter only under
// the set's name, so that NATS itself refuses a write to a bucket the
// rules never named.
type RuleSetScope struct {
	Set string // the rule set: its durable consumer and dead-letter subjects
	// Commands are scoped command subjects below the command prefix:
	// "<op>.<bucket>", or "tx.<b1>.<b2>..." (see events.ScopedName).
	Commands []string
	Publish  []string // subjects of the rules' publish actions
}

// WithRuleSetScope writes the rule node's permissions for one rule set
// only (see [RuleSetScope]); the rule node must send scoped subjects
// (rulenode --scoped-subjects, client.WithScopedSubjects).
func WithRuleSetScope(s RuleSetScope) Option {
	return func(c *config) error {
		if !token(s.Set) {
			return fmt.Errorf("auth: rule set %q: want one subject token (a consumer name)", s.Set)
		}
		for _, cmd := range s.Commands {
			if err := scopedCommand(cmd); err != nil {
				return err
			}
		}
		if err := WithRulePublish(s.Publish...)(c); err != nil {
			return err
		}
		c.ruleSets = []string{s.Set}
		c.scope = &s
		return nil
	}
}

// scopedCommand checks one subject of RuleSetScope.Commands: a command
// served on scoped subjects and at least one bucket, a transaction's
// sorted and each once.
func scopedCommand(s string) error {
	tokens := strings.Split(s, ".")
	cmd, buckets := tokens[0], tokens[1:]
	switch {
	case !events.ScopedCommand(cmd) || len(buckets) == 0 || cmd != events.CmdTx && len(buckets) != 1:
		return fmt.Errorf("auth: scoped command %q: want <op>.<bucket> or tx.<bucket>...", s)
	case slices.ContainsFunc(buckets, func(b string) bool { return !events.ValidBucketName(b) }):
		return fmt.Errorf("auth: scoped command %q: not a valid bucket name", s)
	case events.ScopedName(cmd, buckets...) != s:
		return fmt.Errorf("auth: scoped command %q: a transaction's buckets sorted, each once", s)
	}
	return nil
}

// ruleNodeCommands are the command subjects a rule node may send: all,
// or those of its rule set's scope.
func (c *config) ruleNodeCommands() []string {
	if c.scope == nil {
		return []string{c.prefix + ".>"}
	}
	out := make([]string, len(c.scope.Commands))
	for i, cmd := range c.scope.Commands {
		out[i] = c.prefix + "." + cmd
	}
	return out
}

// ruleNodeDeadLetters are the dead-letter subjects a rule node may
// publish: any rule set's, or its own set's.
func (c *config) ruleNodeDeadLetters() string {
	if c.scope == nil {
		return c.dlqPrefix + ".>"
	}
	return c.dlqPrefix + "." + c.scope.Set + ".>"
}
