package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
)

func init() { rootCmd.AddCommand(watchCmd()) }

func watchCmd() *cobra.Command {
	var fromSeq uint64
	var count int
	cmd := &cobra.Command{
		Use:   "watch BUCKET",
		Short: "Print a reactive query as JSON lines: the matching records, ready, then every change",
		Long: `Print the records of BUCKET matching --where as "snapshot" lines, one
"ready" line, then every change to that set as "added", "changed" or
"removed" lines, in stream order, each with the key, the record and seq, the
stream sequence of the event (of snapshot and ready lines: the sequence the
snapshot is consistent at). A record that stops matching is removed, one that
starts matching added. After a disconnect, --from-seq N with the last seq seen
resumes with exactly the changes after it (no snapshot, no ready line).
Stop with Ctrl-C, or after --count lines.`,
		Args: args(cobra.ExactArgs(1)),
	}
	where := whereFlag(cmd)
	cmd.Flags().Uint64Var(&fromSeq, "from-seq", 0, "resume: print only the changes after stream sequence N")
	cmd.Flags().IntVarP(&count, "count", "n", 0, "stop after N lines (0: run until interrupted)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		w, err := where()
		if err != nil {
			return err
		}
		if count < 0 {
			return usagef("--count must be >= 0")
		}
		var opts []client.WatchOption
		if cmd.Flags().Changed("from-seq") {
			opts = append(opts, client.WatchFromSeq(fromSeq))
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetEscapeHTML(false)
		return withClient(cmd, func(c *client.Client) error {
			ctx := cmd.Context()
			qw, err := c.Watch(ctx, a[0], w, opts...)
			if err != nil {
				return err
			}
			defer qw.Stop()
			for seen := 0; count == 0 || seen < count; seen++ {
				ch, err := qw.Next(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if err := enc.Encode(ch); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return cmd
}
