package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/engine"
)

func attachCommand() *cobra.Command {
	var o engine.AttachOptions
	c := &cobra.Command{
		Use:   "attach [--no-stdin] [--sig-proxy=false] CONTAINER",
		Short: "Connect to a running container's output (and input, with -i); ^P ^Q detaches from a -t one",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			code, err := e.AttachTo(args[0], o, engine.Attach{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
			if errors.Is(err, engine.ErrDetached) {
				return nil
			}
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&o.NoStdin, "no-stdin", false, "do not send input")
	c.Flags().BoolVar(&o.SigProxy, "sig-proxy", true, "pass SIGINT and SIGTERM to the container")
	return c
}
