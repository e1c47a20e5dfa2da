package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func init() {
	system := &cobra.Command{Use: "system", Short: "Check, clean and measure the store"}
	var repair bool
	check := &cobra.Command{
		Use:   "check [--repair]",
		Short: "Verify every blob digest, every ref and every snapshot",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			res, err := s.Check(repair)
			if err != nil {
				return err
			}
			fmt.Printf("checked %d blobs, %d refs, %d snapshots\n", res.Blobs, res.Refs, res.Snapshots)
			fixed := map[string]bool{}
			for _, r := range res.Repaired {
				fixed[r] = true
			}
			for _, p := range res.Problems {
				if fixed[p] {
					fmt.Printf("repaired: %s\n", p)
				} else {
					fmt.Printf("problem: %s\n", p)
				}
			}
			if len(res.Problems) > len(res.Repaired) {
				if !repair {
					return fmt.Errorf("%d problems found (run `berth system check --repair` to drop what is broken)", len(res.Problems))
				}
				return fmt.Errorf("%d problems could not be repaired", len(res.Problems)-len(res.Repaired))
			}
			return nil
		},
	}
	check.Flags().BoolVar(&repair, "repair", false, "drop broken blobs, refs and snapshots")
	var all, force bool
	prune := &cobra.Command{
		Use:   "prune [-a]",
		Short: "Remove dangling images (-a: all unused), unreferenced blobs and snapshots, leftovers",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			res, err := s.Prune(all)
			if err != nil {
				return err
			}
			fmt.Printf("Deleted images: %d\nTotal reclaimed space: %s\n", len(res.Removed), humanSize(res.Reclaimed))
			return nil
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "remove every image no container uses")
	prune.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never prompts)")
	df := &cobra.Command{
		Use:   "df",
		Short: "Show space used by images, snapshots and containers",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			d, err := s.DiskUsage()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE")
			fmt.Fprintf(tw, "Images\t%d\t%d\t%s\t%s\n", d.Images, d.ImagesActive, humanSize(d.ImageBytes), humanSize(d.ImageReclaim))
			fmt.Fprintf(tw, "Snapshots\t%d\t\t%s\t\n", d.Snapshots, humanSize(d.SnapshotBytes))
			fmt.Fprintf(tw, "Containers\t%d\t\t%s\t\n", d.Containers, humanSize(d.ContainerBytes))
			return tw.Flush()
		},
	}
	system.AddCommand(check, prune, df, infoCommand())
	root.AddCommand(system)
}
