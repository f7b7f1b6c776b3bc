package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/storeloop/storeloop/projections"
)

func init() {
	var last int
	var jaeger string
	cmd := &cobra.Command{
		Use:   "trace [CORRELATION_ID]",
		Short: "Print the causal tree of a cascade (or of the last N), rebuilt from the event stream",
		Long: `trace rebuilds causal chains from the events' meta alone (correlation and
causation ids, hop, rule): which mutation caused which rule's writes, with
times, transactions and the trace id each event carried. It works when
traces were sampled out. With --jaeger, each trace id is printed as a link.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := dial(cmd)
			if err != nil {
				return err
			}
			defer cl.Close()
			all, err := cl.Cascades(cmd.Context())
			if err != nil {
				return err
			}
			var shown []*projections.Cascade
			switch {
			case len(args) == 1:
				for _, c := range all {
					if c.CorrelationID == args[0] {
						shown = append(shown, c)
					}
				}
				if len(shown) == 0 {
					return fmt.Errorf("no events with correlation id %q", args[0])
				}
			case last > 0 && len(all) > last:
				shown = all[len(all)-last:]
			default:
				shown = all
			}
			out := cmd.OutOrStdout()
			for _, c := range shown {
				c.Print(out)
				if jaeger != "" {
					for _, id := range c.TraceIDs() {
						fmt.Fprintf(out, "  jaeger: %s/trace/%s\n", strings.TrimRight(jaeger, "/"), id)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&last, "last", 10, "show the last N cascades (0: all)")
	cmd.Flags().StringVar(&jaeger, "jaeger", "", "Jaeger UI base URL, e.g. http://localhost:16686, to print trace links")
	rootCmd.AddCommand(cmd)
}
