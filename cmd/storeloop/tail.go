package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

func init() { rootCmd.AddCommand(tailCmd()) }

// errTailDone ends a tail after --count events.
type errTailDone struct{}

func (errTailDone) Error() string { return "done" }

func tailCmd() *cobra.Command {
	var all bool
	var fromSeq uint64
	var count int
	cmd := &cobra.Command{
		Use:   "tail [SUBJECT]",
		Short: "Print bucket events as JSON lines (default: new events on bucket.>)",
		Long: `Print bucket events as they are appended, one JSON object per line, with
meta.seq the stream sequence. SUBJECT is a NATS filter such as bucket.orders.>
or bucket.*.deleted. Stop with Ctrl-C, or after --count events.`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			filter := ""
			if len(a) == 1 {
				filter = a[0]
			}
			if all && fromSeq > 0 {
				return usagef("--all and --from-seq exclude each other")
			}
			if count < 0 {
				return usagef("--count must be >= 0")
			}
			start := client.OnlyNew()
			switch {
			case all:
				start = client.FromBeginning()
			case fromSeq > 0:
				start = client.FromSequence(fromSeq)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			seen := 0
			return withClient(cmd, func(c *client.Client) error {
				err := c.Tail(cmd.Context(), filter, func(ev *events.Event) error {
					if err := enc.Encode(ev); err != nil {
						return err
					}
					seen++
					if count > 0 && seen == count {
						return errTailDone{}
					}
					return nil
				}, start)
				if _, ok := err.(errTailDone); ok {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "start from the first event in the stream")
	cmd.Flags().Uint64Var(&fromSeq, "from-seq", 0, "start from stream sequence N")
	cmd.Flags().IntVarP(&count, "count", "n", 0, "stop after N events (0: run until interrupted)")
	return cmd
}
