package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/rulenode"
)

// Exit codes of rules shadow, fixed for CI gates.
const (
	shadowSame    = 0
	shadowDiffers = 1
	shadowError   = 2
)

func rulesShadowCmd() *cobra.Command {
	var rng rulenode.ShadowRange
	cmd := &cobra.Command{
		Use:   "shadow FILE [--last N | --from SEQ]",
		Short: "Show what a candidate rule file would write on recorded events, next to what the deployed version wrote",
		Long: `shadow evaluates the candidate rule set in FILE on recorded events of the
stream, writing nothing, next to the deployed version of the rule set of the
same name that handled each event. For every event it prints the writes of
both as evaluated commands (values, not expressions): lines "current" are
the deployed version's, with the stream sequence of the event each one wrote
(found by its command id), lines "candidate" the candidate's; "+" marks a
write only the candidate makes, "-" one it no longer makes. A summary ends
the output: rules added, removed and changed, writes gained and lost.

The events are the last N (--last, default 20) that the subjects of the
candidate or of the current version match, or all from stream sequence SEQ
on (--from). Both versions see each event as it was recorded; reads of their
actions (forEach queries) are answered by the store as it is NOW, not as it
was when the event was appended.

Exit codes: 0 the candidate writes the same on every event, 1 it differs,
2 an error (invalid file, store unreachable).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if cmd.Flags().Changed("last") && cmd.Flags().Changed("from") {
				return usagef("--last and --from exclude each other")
			}
			if rng.Last < 1 {
				return usagef("--last %d: want at least 1", rng.Last)
			}
			if cmd.Flags().Changed("from") && rng.From < 1 {
				return usagef("--from %d: want a stream sequence from 1", rng.From)
			}
			src, err := os.ReadFile(a[0])
			if err != nil {
				return usageError{err}
			}
			set, err := rulenode.Load(bytes.NewReader(src), a[0])
			if err != nil {
				printLoadError(cmd.ErrOrStderr(), a[0], err)
				return usagef("%s is invalid", a[0])
			}
			cl, reg, err := openRegistry(cmd)
			if err != nil {
				return exitStatus{shadowError, err}
			}
			defer cl.Close()
			rep, err := rulenode.Shadow(cmd.Context(), cl, reg, set, src, rng)
			if err != nil {
				return exitStatus{shadowError, err}
			}
			printShadow(cmd.OutOrStdout(), rep)
			if rep.Differs() {
				return exitStatus{shadowDiffers, errors.New("the candidate's writes differ")}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&rng.Last, "last", 20, "the last N events the rule sets' subjects match")
	cmd.Flags().Uint64Var(&rng.From, "from", 0, "all events from this stream sequence on")
	return cmd
}

func printShadow(w io.Writer, rep *rulenode.ShadowReport) {
	against := "no deployed version"
	if rep.Current != nil {
		against = fmt.Sprintf("version %d (hash %s)", rep.Current.Version, shortHash(rep.Current.Hash))
	}
	fmt.Fprintf(w, "shadow of rule set %s: candidate vs %s, %s\n", rep.Name, against, plural(len(rep.Events), "event"))
	differ := 0
	for _, e := range rep.Events {
		if e.Differs() {
			differ++
		}
		by := "no version"
		if e.Version > 0 {
			by = fmt.Sprintf("version %d", e.Version)
		}
		fmt.Fprintf(w, "\nseq %d %s key %v (handled by %s)\n", e.Event.Meta.Seq, e.Subject, e.Event.Key, by)
		printOutcome(w, "current  ", e.Current, e.Lost, "-", e.Written)
		printOutcome(w, "candidate", e.Candidate, e.Gained, "+", nil)
	}
	fmt.Fprintf(w, "\nrules added: %s; removed: %s; changed: %s\n", list(rep.RulesAdded), list(rep.RulesRemoved), list(rep.RulesChanged))
	fmt.Fprintf(w, "writes gained: %d, lost: %d; %d of %d events differ\n", rep.Gained, rep.Lost, differ, len(rep.Events))
}

// printOutcome prints one version's writes for an event, marking with
// mark those in only (the writes the other version does not make).
func printOutcome(w io.Writer, who string, o rulenode.Outcome, only []rulenode.Write, mark string, written []uint64) {
	onlyLeft := map[string]int{}
	for _, x := range only {
		onlyLeft[x.String()]++
	}
	if o.MaxHop {
		fmt.Fprintf(w, "    %s at maxHop: not acted on, dead-lettered\n", who)
	}
	if len(o.Writes) == 0 && len(o.Failed) == 0 {
		fmt.Fprintf(w, "    %s (no writes)\n", who)
	}
	for i, x := range o.Writes {
		m := " "
		if s := x.String(); onlyLeft[s] > 0 {
			onlyLeft[s]--
			m = mark
		}
		suffix := ""
		if written != nil {
			if written[i] > 0 {
				suffix = fmt.Sprintf("  [written: seq %d]", written[i])
			} else {
				suffix = "  [no event written]"
			}
		}
		fmt.Fprintf(w, "  %s %s %s%s\n", m, who, x, suffix)
	}
	for _, f := range o.Failed {
		fmt.Fprintf(w, "  ! %s %s failed: %v\n", who, f.RuleID, f.Err)
	}
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
