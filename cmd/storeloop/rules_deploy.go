package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/rulenode"
)

// openRegistry connects with the global flags and binds the rule-set
// registry; close the client when done.
func openRegistry(cmd *cobra.Command) (*client.Client, *rulenode.Registry, error) {
	cl, err := dial(cmd)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(cl.Conn())
	if err == nil {
		var reg *rulenode.Registry
		if reg, err = rulenode.OpenRegistry(cmd.Context(), js, streamName(cmd)); err == nil {
			return cl, reg, nil
		}
	}
	cl.Close()
	return nil, nil, err
}

// deployer names who deploys: the credentials' name when --creds is
// given, else user@host.
func deployer(cmd *cobra.Command) string {
	if creds := flagOrEnv(cmd, "creds", envCreds); creds != "" {
		return strings.TrimSuffix(filepath.Base(creds), ".creds")
	}
	return localUser()
}

// localUser is user@host of this process.
func localUser() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func rulesDeployCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "deploy FILE",
		Short: "Store a rule file as the next version of its rule set; running rule nodes switch to it",
		Long: `deploy checks FILE as 'storeloop rules lint' does and refuses what lint
refuses (exit 2 for an invalid file, 1 for a loop noLoop does not guard),
storing nothing. Otherwise it stores the file as the next version of its
rule set in the JetStream bucket ` + rulenode.RulesBucket + ` and decides the stream
sequence from which that version handles events. Rule nodes started with
--ruleset NAME switch to it at that sequence, all of them, within a second.
A file identical to the current version is not stored again.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			src, err := os.ReadFile(a[0])
			if err != nil {
				return usageError{err}
			}
			cl, reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			defer cl.Close()
			d, unchanged, err := reg.Deploy(cmd.Context(), src, deployer(cmd))
			var les rulenode.LoadErrors
			if errors.As(err, &les) {
				printLoadError(cmd.ErrOrStderr(), a[0], err)
				return usagef("%s is invalid: nothing deployed", a[0])
			}
			if err != nil {
				return err
			}
			if unchanged {
				fmt.Fprintf(cmd.OutOrStdout(), "%s version %d unchanged (hash %s), from seq %d\n", d.Name, d.Version, shortHash(d.Hash), d.From)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s version %d deployed (hash %s), from seq %d\n", d.Name, d.Version, shortHash(d.Hash), d.From)
			return nil
		},
	}
}

func rulesRollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME VERSION",
		Short: "Deploy the rules of an earlier version again, as a new version",
		Long: `rollback appends a new version of rule set NAME whose rules are those of
VERSION (history is append-only); running rule nodes switch to it as on a deploy.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			v, err := strconv.Atoi(a[1])
			if err != nil || v < 1 {
				return usagef("VERSION %q: want a version number from 1", a[1])
			}
			cl, reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			defer cl.Close()
			d, err := reg.Rollback(cmd.Context(), a[0], v, deployer(cmd))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s version %d deployed (rules of version %d, hash %s), from seq %d\n",
				d.Name, d.Version, v, shortHash(d.Hash), d.From)
			return nil
		},
	}
}

// versionColumns are the columns of rules ls and rules history; more can
// be appended (a row's cells are in this order).
var versionColumns = []string{"VERSION", "HASH", "FROM", "DEPLOYED", "BY"}

func versionCells(d *rulenode.Deployment) []string {
	from := strconv.FormatUint(d.From, 10)
	if d.Pending() {
		from = "pending"
	}
	by := d.By
	if d.RollbackOf > 0 {
		by += fmt.Sprintf(" (rollback to %d)", d.RollbackOf)
	}
	return []string{strconv.Itoa(d.Version), shortHash(d.Hash), from, d.At.Format(time.RFC3339), by}
}

// printTable prints rows aligned in columns, under header unless nil.
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// shortHash is the first 12 hex digits of a hash, enough to tell versions apart.
func shortHash(h string) string { return h[:min(12, len(h))] }

func rulesLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List deployed rule sets: name, current version, hash, from which sequence, when, quarantined rules",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			defer cl.Close()
			cur, err := reg.Current(cmd.Context())
			if err != nil {
				return err
			}
			status, err := quarantineStatus(cmd.Context(), cl)
			if err != nil {
				return err
			}
			rows := make([][]string, len(cur))
			for i, d := range cur {
				rows[i] = append([]string{d.Name, status(d.Name)}, versionCells(d)...)
			}
			return printTable(cmd.OutOrStdout(), append([]string{"NAME", "STATUS"}, versionColumns...), rows)
		},
	}
}

func rulesHistoryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List the versions of a rule set, oldest first: number, hash, from which sequence, when, who",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, reg, err := openRegistry(cmd)
			if err != nil {
				return err
			}
			defer cl.Close()
			hist, err := reg.History(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			// No header: each line starts with the version number, for scripts.
			rows := make([][]string, len(hist))
			for i, d := range hist {
				rows[i] = versionCells(d)
			}
			return printTable(cmd.OutOrStdout(), nil, rows)
		},
	}
}
