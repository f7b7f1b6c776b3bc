package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/rulenode"
)

func init() { rootCmd.AddCommand(rulesCmd()) }

func rulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check and inspect rule files; deploy rule sets, list, roll back and shadow-run their versions",
	}
	cmd.AddCommand(rulesLintCmd(), rulesShowCmd(),
		rulesDeployCmd(), rulesLsCmd(), rulesHistoryCmd(), rulesRollbackCmd(), rulesShadowCmd(),
		rulesQuarantinedCmd(), rulesResumeCmd())
	return cmd
}

func rulesLintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lint FILE...",
		Short: "Load rule files and report loops between their rules",
		Long: `Load each rule file, reporting every problem with its line, then look for
cycles across all the rule sets given: a rule writing an event subject that
another rule reads, and so on back to the first. Each cycle is printed with
the subjects that close it; rules marked (noLoop) ignore their own writes,
and a cycle of one such rule is guarded.

An unguarded cycle may still be safe — a when condition can break it (the
seed's "alreadyFlagged" guard) — but lint cannot prove it: at run time only
the condition or the rule set's maxHop stops it.

Exit codes: 0 no unguarded cycle, 1 an unguarded cycle, 2 an invalid file.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, files []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var sets []*rulenode.RuleSet
			invalid := 0
			for _, file := range files {
				set, err := rulenode.LoadFile(file)
				if err != nil {
					invalid++
					printLoadError(errOut, file, err)
					continue
				}
				fmt.Fprintf(out, "%s: rule set %s, %s, maxHop %d\n", file, set.Name, plural(len(set.Rules), "rule"), set.MaxHop)
				sets = append(sets, set)
			}
			unguarded := printCycles(out, rulenode.Lint(sets...))
			switch {
			case invalid > 0:
				return usagef("%d of %s invalid", invalid, plural(len(files), "rule file"))
			case unguarded > 0:
				return fmt.Errorf("%s not guarded by noLoop: only when conditions or maxHop stop such a loop at run time",
					plural(unguarded, "cycle"))
			}
			return nil
		},
	}
}

// printLoadError prints each problem of a file that did not load on its
// own line ("file:line: rule "id": field: reason").
func printLoadError(w io.Writer, file string, err error) {
	var les rulenode.LoadErrors
	if !errors.As(err, &les) {
		fmt.Fprintf(w, "%s: %v\n", file, err)
		return
	}
	for _, le := range les {
		fmt.Fprintln(w, le.Error())
	}
}

// printCycles prints the cycles and returns how many are unguarded.
func printCycles(w io.Writer, cycles []rulenode.Cycle) int {
	if len(cycles) == 0 {
		fmt.Fprintln(w, "no cycles")
		return 0
	}
	unguarded := 0
	for i, c := range cycles {
		mark := ""
		if c.Guarded() {
			mark = " (guarded by noLoop)"
		} else {
			unguarded++
		}
		fmt.Fprintf(w, "cycle %d%s: %s\n", i+1, mark, c)
	}
	fmt.Fprintf(w, "%s, %d unguarded\n", plural(len(cycles), "cycle"), unguarded)
	return unguarded
}

func rulesShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE",
		Short: "Print a rule set: its consumer's filter subjects and each rule's on, when, actions and version checks",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			set, err := rulenode.LoadFile(a[0])
			if err != nil {
				printLoadError(cmd.ErrOrStderr(), a[0], err)
				return usagef("%s is invalid", a[0])
			}
			showRuleSet(cmd.OutOrStdout(), set)
			return nil
		},
	}
}

func showRuleSet(w io.Writer, set *rulenode.RuleSet) {
	fmt.Fprintf(w, "rule set: %s (durable consumer %s)\n", set.Name, set.Name)
	fmt.Fprintf(w, "maxHop:   %d\n", set.MaxHop)
	fmt.Fprintf(w, "filters:  %s\n", strings.Join(set.Subjects(), " "))
	for _, r := range set.Rules {
		fmt.Fprintf(w, "\nrule %s\n", r.ID)
		fmt.Fprintf(w, "  on:     %s\n", strings.Join(r.On, " "))
		when := r.When
		if when == "" {
			when = "(always)"
		}
		fmt.Fprintf(w, "  when:   %s\n", when)
		if r.NoLoop {
			fmt.Fprintln(w, "  noLoop: ignores events of its own writes")
		}
		fmt.Fprintln(w, "  then:")
		showActions(w, r.Then, "    ", false)
	}
}

// showActions prints one line per action, nested actions indented below.
// Version checks follow the action's summary: its expectVersion, a tx's
// reads (one line each, before its ops), where the action can conflict
// its onConflict policy, and an explicit onMissing. Ops of a tx have none of their own:
// the tx is one command.
func showActions(w io.Writer, acts []*rulenode.Action, indent string, inTx bool) {
	for _, a := range acts {
		line := fmt.Sprintf("%s%s (line %d)", indent, actionSummary(a), a.Line)
		if a.ExpectVersion != nil {
			line += ", expectVersion " + a.ExpectVersion.String()
		}
		if p := conflictPolicy(a, inTx); p != "" {
			line += ", onConflict " + p
		}
		if a.OnMissing != "" {
			line += ", onMissing " + string(a.OnMissing)
		}
		fmt.Fprintln(w, line)
		for _, r := range a.Reads {
			fmt.Fprintf(w, "%s  reads %s %s at version %s (line %d)\n", indent, r.Bucket, r.Key, r.Version, r.Line)
		}
		showActions(w, a.Ops, indent+"  ", inTx || a.Kind == rulenode.KindTx)
		showActions(w, a.Do, indent+"  ", inTx)
	}
}

// conflictPolicy describes what a conflict does to a's rule: the explicit
// onConflict, or the default (skip) of an action that checks a version.
// The default of a plain insert or tx (fail, on a key taken) goes unsaid,
// and ops of a tx have no policy of their own: the tx is one command.
func conflictPolicy(a *rulenode.Action, inTx bool) string {
	if inTx {
		return ""
	}
	switch a.Kind {
	case rulenode.KindInsert, rulenode.KindUpdate, rulenode.KindDelete, rulenode.KindTx:
	default:
		return ""
	}
	switch {
	case a.OnConflict != rulenode.ConflictDefault:
		return string(a.OnConflict)
	case a.Checked():
		return string(a.ConflictPolicy()) + " (default of a version check)"
	}
	return ""
}

func actionSummary(a *rulenode.Action) string {
	switch a.Kind {
	case rulenode.KindInsert, rulenode.KindUpdate, rulenode.KindUpsert, rulenode.KindDelete:
		return string(a.Kind) + " " + a.Bucket
	case rulenode.KindTx:
		return fmt.Sprintf("tx of %s, atomic", plural(len(a.Ops), "op"))
	case rulenode.KindForEach:
		return fmt.Sprintf("forEach %s in %s", a.As, a.Bucket)
	case rulenode.KindPublish:
		if s, ok := a.Subject.Literal(); ok {
			return fmt.Sprintf("publish %v", s)
		}
		return "publish (templated subject)"
	case rulenode.KindLog:
		return "log " + strings.ToLower(a.Level.String())
	}
	return string(a.Kind)
}

// plural is "1 rule", "2 rules".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
