package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
)

func init() { rootCmd.AddCommand(explainCmd()) }

func explainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain BUCKET KEY [FIELD]",
		Short: "Print the writes that produced a record's current value, and what caused each",
		Long: `explain prints the provenance of a record from the events' meta (no tracing
backend needed): one line per write since the record was last inserted,
newest first, with its stream sequence, time, subject, hop, rule (rule=ID@vN
for a rule of version N of a deployed rule set), the triggering event (cause=SUBJECT#SEQ), command and correlation ids. Under
each write made by a rule, indented lines follow its causes back to the
write from outside that started the cascade. With FIELD, only the writes
that changed that field are printed.

Exit codes: 0 printed, 1 no such record (or no write of FIELD).`,
		Args: args(cobra.RangeArgs(2, 3)),
	}
	key := keyFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		var field string
		if len(a) == 3 {
			field = a[2]
		}
		return withClient(cmd, func(cl *client.Client) error {
			writes, err := cl.Explain(cmd.Context(), a[0], key(a[1]), field)
			if err != nil {
				return err
			}
			if len(writes) == 0 {
				return fmt.Errorf("no write of field %q of %s %s", field, a[0], a[1])
			}
			out := cmd.OutOrStdout()
			for _, w := range writes {
				fmt.Fprintln(out, w)
				for depth, c := 1, w.Cause; c != nil; depth, c = depth+1, c.Cause {
					fmt.Fprintf(out, "%s<- %s\n", strings.Repeat("  ", depth), c)
				}
			}
			return nil
		})
	}
	return cmd
}
