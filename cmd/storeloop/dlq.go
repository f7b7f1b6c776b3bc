package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

func init() { rootCmd.AddCommand(dlqCmd()) }

// dlqStream is --dlq-stream of the dlq commands, else $STORELOOP_DLQ_STREAM
// (the daemons' variable), else the default.
var dlqStream string

const envDLQStream = "STORELOOP_DLQ_STREAM"

func dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, retry and remove the events rule sets gave up on (the dead-letter stream)",
		Long: `The dead-letter stream holds one message per event a rule set gave up on,
on storeloop.dlq.<ruleSet>.<reason>, with the event's payload, the rule and
the error. SEQ is a dead letter's sequence in that stream, as dlq ls shows.`,
	}
	cmd.PersistentFlags().StringVar(&dlqStream, "dlq-stream", rulenode.DefaultDeadLetterStream, "dead-letter stream name (env "+envDLQStream+")")
	cmd.AddCommand(dlqLsCmd(), dlqShowCmd(), dlqRetryCmd(), dlqRmCmd())
	return cmd
}

// deadLetter is a dead letter with its sequence in the dead-letter stream.
type deadLetter struct {
	Seq uint64 `json:"seq"`
	rulenode.DeadLetter
}

// dlqRow is a line of dlq ls --json: a dead letter without its payload.
type dlqRow struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	RuleSet    string    `json:"ruleSet"`
	RuleID     string    `json:"ruleId"`
	Reason     string    `json:"reason"`
	Subject    string    `json:"subject"`
	StreamSeq  uint64    `json:"streamSeq"`
	Deliveries uint64    `json:"deliveries"`
	Error      string    `json:"error"`
}

// withDLQ runs fn with a client and the dead-letter stream.
func withDLQ(cmd *cobra.Command, fn func(*client.Client, jetstream.JetStream, jetstream.Stream) error) error {
	dlqStream = flagOrEnv(cmd, "dlq-stream", envDLQStream)
	return withClient(cmd, func(c *client.Client) error {
		js, err := jetstream.New(c.Conn())
		if err != nil {
			return err
		}
		s, err := js.Stream(cmd.Context(), dlqStream)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return fmt.Errorf("no dead-letter stream %s: no store node has created it yet", dlqStream)
		case err != nil:
			return fmt.Errorf("%w: dead-letter stream %s: %w", events.ErrUnavailable, dlqStream, err)
		}
		return fn(c, js, s)
	})
}

// getDeadLetter reads the dead letter at seq.
func getDeadLetter(cmd *cobra.Command, s jetstream.Stream, seq uint64) (*deadLetter, error) {
	m, err := s.GetMsg(cmd.Context(), seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("no dead letter %d in %s", seq, dlqStream)
	}
	if err != nil {
		return nil, err
	}
	return decodeDeadLetter(m)
}

func decodeDeadLetter(m *jetstream.RawStreamMsg) (*deadLetter, error) {
	d := &deadLetter{Seq: m.Sequence}
	if err := json.Unmarshal(m.Data, &d.DeadLetter); err != nil {
		return nil, fmt.Errorf("dead letter %d on %s: %w", m.Sequence, m.Subject, err)
	}
	return d, nil
}

// parseSeq reads a SEQ argument.
func parseSeq(s string) (uint64, error) {
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return 0, usagef("SEQ %q: want a dead letter's sequence (a positive number)", s)
	}
	return seq, nil
}

func dlqLsCmd() *cobra.Command {
	var ruleSet, reason string
	var n int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List dead letters, oldest first: a table, or JSON lines with --json",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 0 {
				return usagef("-n must be >= 0")
			}
			filter := rulenode.DeadLetterSubject(orWildcard(ruleSet), orWildcard(reason))
			return withDLQ(cmd, func(_ *client.Client, _ jetstream.JetStream, s jetstream.Stream) error {
				var rows []dlqRow
				for seq := uint64(1); ; {
					m, err := s.GetMsg(cmd.Context(), seq, jetstream.WithGetMsgSubject(filter))
					if errors.Is(err, jetstream.ErrMsgNotFound) {
						break
					}
					if err != nil {
						return err
					}
					d, err := decodeDeadLetter(m)
					if err != nil {
						return err
					}
					rows = append(rows, dlqRow{Seq: d.Seq, Time: d.Time, RuleSet: d.RuleSet, RuleID: d.RuleID, Reason: d.Reason,
						Subject: d.Subject, StreamSeq: d.StreamSeq, Deliveries: d.Deliveries, Error: d.Error})
					seq = m.Sequence + 1
				}
				if n > 0 && len(rows) > n {
					rows = rows[len(rows)-n:]
				}
				if asJSON {
					return writeJSONLines(cmd.OutOrStdout(), rows)
				}
				return writeDLQTable(cmd.OutOrStdout(), rows)
			})
		},
	}
	cmd.Flags().StringVar(&ruleSet, "rule-set", "", "only this rule set's dead letters")
	cmd.Flags().StringVar(&reason, "reason", "", "only dead letters of this reason: max_hop, failed, rejected, undecodable, max_deliver")
	cmd.Flags().IntVarP(&n, "count", "n", 0, "only the last N (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON lines instead of a table")
	return cmd
}

func orWildcard(token string) string {
	if token == "" {
		return "*"
	}
	return token
}

func writeJSONLines(w io.Writer, rows []dlqRow) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

func writeDLQTable(w io.Writer, rows []dlqRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tRULE SET\tRULE\tREASON\tSUBJECT\tSTREAM SEQ\tDELIVERIES\tERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Seq, r.Time.UTC().Format(time.RFC3339), r.RuleSet,
			orDash(r.RuleID), r.Reason, r.Subject, r.StreamSeq, r.Deliveries, strings.ReplaceAll(r.Error, "\n", " "))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dlqShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show SEQ",
		Short: "Print a dead letter as JSON, with the event's payload",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			seq, err := parseSeq(a[0])
			if err != nil {
				return err
			}
			return withDLQ(cmd, func(_ *client.Client, _ jetstream.JetStream, s jetstream.Stream) error {
				d, err := getDeadLetter(cmd, s, seq)
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), d)
			})
		},
	}
}

func dlqRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm SEQ...",
		Short: "Delete dead letters",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			seqs := make([]uint64, len(a))
			for i, s := range a {
				var err error
				if seqs[i], err = parseSeq(s); err != nil {
					return err
				}
			}
			return withDLQ(cmd, func(_ *client.Client, _ jetstream.JetStream, s jetstream.Stream) error {
				for _, seq := range seqs {
					if err := deleteDeadLetter(cmd, s, seq); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "deleted dead letter %d\n", seq)
				}
				return nil
			})
		},
	}
}

func deleteDeadLetter(cmd *cobra.Command, s jetstream.Stream, seq uint64) error {
	err := s.DeleteMsg(cmd.Context(), seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return fmt.Errorf("no dead letter %d in %s", seq, dlqStream)
	}
	return err
}

func dlqRetryCmd() *cobra.Command {
	var rules string
	var keep bool
	cmd := &cobra.Command{
		Use:   "retry SEQ --rules FILE",
		Short: "Run a dead letter's rules once more, here, from FILE; delete the dead letter if they succeed",
		Long: `retry loads the rule set from FILE (its name must be the dead letter's rule
set) and runs, once and in this process, the rules the event was given up
on: for a failed or rejected dead letter its rule, for max_hop or
max_deliver every rule whose filter and condition match. The writes carry
the event's causal chain as a rule node's would.

Writes that an earlier attempt applied are not applied again: retry finds
them in the event stream by their command ids. The others are sent under a
new command id (the original's plus a retry token), as the store would
answer the original id with its first reply, the rejection. Do not retry
the same dead letter twice at once. Publish and log actions run again.

Events are written by the store only: retry sends commands, it never
re-publishes the event. On success the dead letter is deleted, unless
--keep.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			seq, err := parseSeq(a[0])
			if err != nil {
				return err
			}
			if rules == "" {
				return usagef("--rules FILE is required")
			}
			set, err := rulenode.LoadFile(rules)
			if err != nil {
				printLoadError(cmd.ErrOrStderr(), rules, err)
				return usagef("%s is invalid", rules)
			}
			return withDLQ(cmd, func(c *client.Client, js jetstream.JetStream, s jetstream.Stream) error {
				d, err := getDeadLetter(cmd, s, seq)
				if err != nil {
					return err
				}
				ran, err := rulenode.NewRunner(js, c, set, rulenode.WithStream(streamName(cmd))).Retry(cmd.Context(), &d.DeadLetter)
				if err != nil {
					return fmt.Errorf("dead letter %d: %w", seq, err)
				}
				out := cmd.OutOrStdout()
				if len(ran) == 0 {
					fmt.Fprintf(out, "dead letter %d: no rule of %s acts on %s #%d now\n", seq, set.Name, d.Subject, d.StreamSeq)
				} else {
					fmt.Fprintf(out, "dead letter %d: ran %s on %s #%d\n", seq, strings.Join(ran, ", "), d.Subject, d.StreamSeq)
				}
				if keep {
					return nil
				}
				if err := deleteDeadLetter(cmd, s, seq); err != nil {
					return err
				}
				fmt.Fprintf(out, "deleted dead letter %d\n", seq)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&rules, "rules", "", "YAML rule file of the dead letter's rule set")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the dead letter after a successful retry")
	return cmd
}
