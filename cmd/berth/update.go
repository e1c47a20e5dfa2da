package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/engine"
)

func updateCommand() *cobra.Command {
	var memory, swap, cpus string
	var shares, pids int64
	c := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER...",
		Short: "Change containers' limits (at once if they run, and for their next starts)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var u engine.UpdateOptions
			f := c.Flags()
			if f.Changed("memory") {
				u.Memory = &memory
			}
			if f.Changed("memory-swap") {
				u.MemorySwap = &swap
			}
			if f.Changed("cpus") {
				u.CPUs = &cpus
			}
			if f.Changed("cpu-shares") {
				u.CPUShares = &shares
			}
			if f.Changed("pids-limit") {
				u.PidsLimit = &pids
			}
			if u == (engine.UpdateOptions{}) {
				return errors.New("update: give at least one of --memory, --memory-swap, --cpus, --cpu-shares, --pids-limit")
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			for _, ref := range args {
				if err := e.Update(ref, u); err != nil {
					return err
				}
				fmt.Println(ref)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&memory, "memory", "m", "", "memory limit (64m, 1g)")
	f.StringVar(&swap, "memory-swap", "", "memory plus swap (-1: unlimited swap)")
	f.StringVar(&cpus, "cpus", "", "CPUs (0.5: half of one)")
	f.Int64Var(&shares, "cpu-shares", 0, "relative CPU weight")
	f.Int64Var(&pids, "pids-limit", 0, "most processes (-1: unlimited)")
	return c
}
