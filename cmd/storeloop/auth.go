package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/auth"
)

func init() {
	authCmd := &cobra.Command{Use: "auth", Short: "Credentials for the roles NATS enforces (store, rulenode, client, admin)"}
	authCmd.AddCommand(authInitCmd(), authUserCmd(), authRulesCmd())
	rootCmd.AddCommand(authCmd)
}

// ruleFlags are the flags of auth init, user and rules that shape the
// rule node's permissions (and the dead-letter stream's name, which the
// store's are written for too).
type ruleFlags struct {
	publish, sets []string
	file          string // a rule file: one rule set's permissions only
	dlq           string
}

func (f *ruleFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&f.publish, "rule-publish", nil, "subjects rule publish actions may use (repeatable)")
	cmd.Flags().StringSliceVar(&f.sets, "rule-set", nil, "restrict rulenode.creds to these rule sets' consumers (repeatable; default any)")
	cmd.Flags().StringVar(&f.dlq, "dlq-stream", auth.DefaultDeadLetterStream, "dead-letter stream name, as storenode and rulenode --dlq-stream")
	cmd.Flags().StringVar(&f.file, "rules", "", "YAML rule file: the rule node may run only its rule set and send only the commands its rules can, on bucket-scoped subjects (rulenode --scoped-subjects)")
}

// authOptions are the permission names from the global flags and f.
func authOptions(cmd *cobra.Command, f ruleFlags) ([]auth.Option, error) {
	opts := []auth.Option{
		auth.WithCommandPrefix(flagOrEnv(cmd, "prefix", envPrefix)),
		auth.WithStream(streamName(cmd)),
		auth.WithRulePublish(f.publish...),
		auth.WithRuleSets(f.sets...),
		auth.WithDeadLetterStream(f.dlq),
	}
	if f.file == "" {
		return opts, nil
	}
	scope, err := ruleSetScope(f.file)
	return append(opts, scope), err
}

// limitFlags are auth init's limits of the account and its users.
type limitFlags struct {
	streams, consumers, subs int64
	disk, memory             string
}

func (f *limitFlags) register(cmd *cobra.Command) {
	d := auth.DefaultLimits
	cmd.Flags().Int64Var(&f.streams, "max-streams", d.Streams, "JetStream streams the account may have (-1: no limit)")
	cmd.Flags().Int64Var(&f.consumers, "max-consumers", d.Consumers, "JetStream consumers the account may have, durable and ordered (-1: no limit)")
	cmd.Flags().StringVar(&f.disk, "max-disk", formatBytes(d.DiskBytes), "file storage of all the account's streams, e.g. 100GiB (-1: no limit)")
	cmd.Flags().StringVar(&f.memory, "max-memory", formatBytes(d.MemoryBytes), "memory storage of all the account's streams, e.g. 1GiB (-1: no limit)")
	cmd.Flags().Int64Var(&f.subs, "max-subs", d.Subscriptions, "subscriptions of each client or rule node connection (-1: no limit)")
}

func (f *limitFlags) option() (auth.Option, error) {
	disk, err := parseBytes(f.disk)
	if err != nil {
		return nil, fmt.Errorf("--max-disk: %w", err)
	}
	memory, err := parseBytes(f.memory)
	if err != nil {
		return nil, fmt.Errorf("--max-memory: %w", err)
	}
	return auth.WithLimits(auth.Limits{Streams: f.streams, Consumers: f.consumers, DiskBytes: disk,
		MemoryBytes: memory, Subscriptions: f.subs}), nil
}

// byteUnits are the suffixes parseBytes takes, largest first.
var byteUnits = []struct {
	suffix string
	n      int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// parseBytes reads a byte count: a number with an optional KiB, MiB, GiB or
// TiB suffix, or -1 for no limit.
func parseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	num, unit := s, int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, unit = n, u.n
			break
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || v <= 0 || v > math.MaxInt64/unit {
		return 0, fmt.Errorf("%q: want a positive size such as 512MiB or 100GiB, or -1", s)
	}
	return v * unit, nil
}

// formatBytes is the inverse of parseBytes, in the largest exact unit.
func formatBytes(n int64) string {
	if n < 0 {
		return "-1"
	}
	for _, u := range byteUnits {
		if n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func authInitCmd() *cobra.Command {
	var force bool
	var keysFrom string
	var rules ruleFlags
	var limits limitFlags
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Write credentials for every role, and server.conf, into a new or empty DIR",
		Long: `init writes into DIR (created, or empty) one NATS credentials file per
role: store.creds, rulenode.creds, client.creds and admin.creds, plus
server.conf (no secrets) for the server: storenode --auth DIR, or include it
in a nats-server configuration. DIR/keys holds the signing seeds: keep it
off the machines that run storeloop.

Rotate credentials with --keys-from OLD: the same account (so the same
JetStream data) with new users, and OLD's users revoked once the server
runs with the new server.conf.

The account's JetStream is limited (--max-streams, --max-consumers,
--max-disk, --max-memory) and so is each client and rule node connection
(--max-subs), so that no client can exhaust the server.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			limit, err := limits.option()
			if err != nil {
				return usageError{err}
			}
			opts, err := authOptions(cmd, rules)
			if err != nil {
				return err
			}
			opts = append(opts, limit)
			if force {
				opts = append(opts, auth.WithForce())
			}
			if keysFrom != "" {
				opts = append(opts, auth.WithKeysFrom(keysFrom))
			}
			if err := auth.Init(a[0], opts...); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s\n", filepath.Join(a[0], auth.ServerConfFile))
			for _, r := range auth.Roles {
				fmt.Fprintf(out, "wrote %s\n", filepath.Join(a[0], r.CredsFile()))
			}
			fmt.Fprintf(out, "start the store node with: storenode --auth %s\n", a[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite the credentials of a non-empty DIR")
	cmd.Flags().StringVar(&keysFrom, "keys-from", "", "reuse the operator and account keys of this auth directory and revoke its users (rotation)")
	rules.register(cmd)
	limits.register(cmd)
	return cmd
}

func authUserCmd() *cobra.Command {
	var role string
	var force bool
	var rules ruleFlags
	var subs int64
	cmd := &cobra.Command{
		Use:   "user NAME DIR",
		Short: "Issue one more client or rule node user, with a reply inbox of its own, into the auth directory DIR",
		Long: `user writes DIR/<role>_NAME.creds: a user of the role (--role client or
rulenode) signed with DIR's account key, whose replies come to its own
inbox prefix _INBOX_<role>_NAME, which no other user may subscribe to.
Give each application its own user: users of one credentials file share
an inbox. Its permissions are written for what auth init was given
(--prefix, --stream, --dlq-stream, --rule-set, --rule-publish, --rules,
--max-subs), as
DIR/settings.json records it; flags given here change them (--rule-set and
--rule-publish add to the recorded ones).

--force issues an existing user again and revokes the credentials it
replaces in DIR/server.conf: the server refuses them once it reads that
file again (storenode --auth DIR: send it SIGHUP, or restart it; a
nats-server including server.conf: nats-server --signal reload).

With --role rulenode --rules FILE the user may run only FILE's rule set and
send only the commands its rules can, on bucket-scoped subjects
(store.<op>.<bucket>; run the rule node with --scoped-subjects): a rule
later edited to write to another bucket is refused by NATS.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			r := auth.Role(role)
			if r != auth.RoleClient && r != auth.RoleRuleNode {
				return usageError{fmt.Errorf("--role %q: want client or rulenode", role)}
			}
			if rules.file != "" && r != auth.RoleRuleNode {
				return usageError{fmt.Errorf("--rules: the permissions of a rule set are a rule node's: give --role rulenode")}
			}
			opts, err := userOptions(cmd, rules, subs)
			if err != nil {
				return err
			}
			if force {
				opts = append(opts, auth.WithForce())
			}
			path, err := auth.AddUser(a[1], r, a[0], opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (reply inbox %s)\n", path, auth.UserInbox(r, a[0]))
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", string(auth.RoleClient), "the user's role: client or rulenode")
	cmd.Flags().BoolVar(&force, "force", false, "issue the user again, replacing its credentials file and revoking the old one in DIR/server.conf (effective once the server reloads it)")
	cmd.Flags().Int64Var(&subs, "max-subs", auth.DefaultLimits.Subscriptions, "subscriptions of each of the user's connections (-1: no limit)")
	rules.register(cmd)
	return cmd
}

// userOptions are the permission settings given to auth user: only those
// given (flag or environment), the others are what auth init recorded.
func userOptions(cmd *cobra.Command, f ruleFlags, subs int64) ([]auth.Option, error) {
	var opts []auth.Option
	given := func(flag, env string) bool { return cmd.Flag(flag).Changed || env != "" && os.Getenv(env) != "" }
	if given("prefix", envPrefix) {
		opts = append(opts, auth.WithCommandPrefix(flagOrEnv(cmd, "prefix", envPrefix)))
	}
	if given("stream", envStream) {
		opts = append(opts, auth.WithStream(streamName(cmd)))
	}
	if given("dlq-stream", "") {
		opts = append(opts, auth.WithDeadLetterStream(f.dlq))
	}
	if given("max-subs", "") {
		limits := auth.DefaultLimits // a user's JWT holds only the subscriptions
		limits.Subscriptions = subs
		opts = append(opts, auth.WithLimits(limits))
	}
	opts = append(opts, auth.WithRulePublish(f.publish...), auth.WithRuleSets(f.sets...))
	if f.file == "" {
		return opts, nil
	}
	scope, err := ruleSetScope(f.file)
	return append(opts, scope), err
}

func authRulesCmd() *cobra.Command {
	var rules ruleFlags
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Print the permission table of the roles (Markdown)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := authOptions(cmd, rules)
			if err != nil {
				return err
			}
			table, err := auth.Rules(opts...)
			if err != nil {
				return usageError{err}
			}
			return printRules(cmd.OutOrStdout(), table)
		},
	}
	rules.register(cmd)
	return cmd
}

func printRules(w io.Writer, rules []auth.Permission) error {
	code := func(subjects []string) string {
		return "`" + strings.Join(subjects, "` `") + "`"
	}
	fmt.Fprintln(w, "| role | may publish | except | may subscribe | replies to requests | for |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, p := range rules {
		resp := "no"
		if p.Responses || p.Role == auth.RoleAdmin {
			resp = "yes"
		}
		deny := "—"
		if len(p.Deny) > 0 {
			deny = code(p.Deny)
		}
		_, err := fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", p.Role, code(p.Publish), deny, code(p.Subscribe), resp, p.Why)
		if err != nil {
			return err
		}
	}
	return nil
}
