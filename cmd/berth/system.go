package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/build"
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
	var all, force, volumes bool
	prune := &cobra.Command{
		Use:   "prune [-a] [--volumes]",
		Short: "Remove stopped containers, unused networks, dangling images (-a: all unused), the build cache and leftovers",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			// As docker system prune: containers first, so that what they
			// held (images, networks, volumes) is unused after.
			e, err := openEngine()
			if err != nil {
				return err
			}
			section := func(title string, names []string) {
				if len(names) > 0 {
					fmt.Printf("Deleted %s:\n%s\n\n", title, strings.Join(names, "\n"))
				}
			}
			ctrs, err := e.Prune()
			section("Containers", ctrs)
			if err != nil {
				return err
			}
			nets, err := pruneNetworks(e)
			section("Networks", nets)
			if err != nil {
				return err
			}
			if volumes {
				vols, err := e.VolumePrune()
				section("Volumes", vols)
				if err != nil {
					return err
				}
			}
			s, _, err := imgStore(true)
			if err != nil {
				return err
			}
			res, err := s.Prune(all)
			if err != nil {
				return err
			}
			var imgs []string
			for _, r := range res.Removed {
				name := r.Name
				if name == "" {
					name = r.Descriptor.Digest.String()
				}
				imgs = append(imgs, name)
			}
			section("Images", imgs)
			cache, err := build.Prune(storeRoot)
			if err != nil {
				return err
			}
			fmt.Printf("Total reclaimed space: %s\n", humanSize(res.Reclaimed+cache.Bytes))
			return nil
		},
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "remove every image no container uses")
	prune.Flags().BoolVar(&volumes, "volumes", false, "remove the volumes no container uses too")
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
