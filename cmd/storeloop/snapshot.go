package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

func init() { rootCmd.AddCommand(snapshotCmd()) }

func snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Make the store node take a snapshot of its state now (a start loads the newest valid one and replays only the events after it)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(c *client.Client) error {
				info, err := c.Snapshot(cmd.Context())
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), info)
			})
		},
	}
	var verify bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the stored snapshots, newest first: sequence, size, when taken, whether its signed header belongs to this stream (with --verify: whether it reads back whole)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(c *client.Client) error {
				list := c.Snapshots
				if verify {
					list = c.VerifySnapshots
				}
				infos, err := list(cmd.Context())
				if err != nil {
					return err
				}
				return writeSnapshotTable(cmd.OutOrStdout(), infos)
			})
		},
	}
	ls.Flags().BoolVar(&verify, "verify", false, "read every snapshot whole and check its checksum (slow for large states)")
	cmd.AddCommand(ls)
	return cmd
}

func writeSnapshotTable(w io.Writer, list []events.SnapshotInfo) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no snapshots")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tBYTES\tRECORDS\tTAKEN\tCHECKSUM\tNAME")
	for _, s := range list {
		check := "header ok"
		switch {
		case !s.Valid:
			check = "BAD: " + s.Problem
		case s.Verified:
			check = "ok"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\n", s.Seq, s.Bytes, s.Records, s.Taken.UTC().Format(time.RFC3339), check, s.Name)
	}
	return tw.Flush()
}
