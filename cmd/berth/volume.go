package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berthproject/berth/engine"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// volumeCmd is `berth volume`: named volumes under <root>/volumes.
var volumeCmd = &cobra.Command{Use: "volume", Short: "Manage named volumes"}

func init() {
	root.AddCommand(volumeCmd)
	volumeCmd.AddCommand(volumeCreateCommand(), volumeLsCommand(), volumeInspectCommand(),
		volumeRmCommand(), volumePruneCommand())
}

func volumeCreateCommand() *cobra.Command {
	var labels []string
	c := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a named volume (a random name if none given)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			lm := map[string]string{}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				lm[k] = v
			}
			if len(lm) == 0 {
				lm = nil
			}
			v, err := e.VolumeCreate(name, lm)
			if err != nil {
				return err
			}
			fmt.Println(v.Name)
			return nil
		},
	}
	c.Flags().StringArrayVar(&labels, "label", nil, "set a label KEY=VAL")
	return c
}

func volumeLsCommand() *cobra.Command {
	var quiet bool
	var filters []string
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			vols, err := e.Volumes()
			if err != nil {
				return err
			}
			// --filter name=|label=K[=V]|dangling=, as docker's.
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || (k != "name" && k != "label" && k != "dangling") || k == "dangling" && v != "true" && v != "false" {
					return fmt.Errorf("invalid --filter %q: want name=, label=KEY[=VALUE] or dangling=true|false", f)
				}
				var keep []*engine.Volume
				for _, vol := range vols {
					lk, lv, hasV := strings.Cut(v, "=")
					got, has := vol.Labels[lk]
					switch {
					case k == "name" && strings.Contains(vol.Name, v),
						k == "label" && has && (!hasV || got == lv),
						k == "dangling" && e.VolumeInUse(vol.Name) == (v == "false"):
						keep = append(keep, vol)
					}
				}
				vols = keep
			}
			if quiet {
				for _, v := range vols {
					fmt.Println(v.Name)
				}
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "DRIVER\tVOLUME NAME")
			for _, v := range vols {
				fmt.Fprintf(w, "%s\t%s\n", v.Driver, v.Name)
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show names")
	c.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter KEY=VALUE: name, label, dangling")
	return c
}

func volumeInspectCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "inspect VOLUME...",
		Short: "Show volumes as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var objs []any
			for _, n := range args {
				v, err := e.VolumeInspect(n)
				if err != nil {
					return err
				}
				objs = append(objs, v)
			}
			if format == "" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "    ")
				return enc.Encode(objs)
			}
			return printInspect(objs, format)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Go template")
	return c
}

func volumeRmCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "rm [-f] VOLUME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var errs []error
			for _, n := range args {
				if err := e.VolumeRemove(n, force); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Println(n)
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "remove even if a container uses it")
	return c
}

func volumePruneCommand() *cobra.Command {
	return pruneCommand("Remove every volume no container uses", "Deleted Volumes:", (*engine.Engine).VolumePrune)
}
