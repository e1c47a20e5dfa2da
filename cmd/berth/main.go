// Command berth is a daemonless container engine: it builds, stores, ships
// and runs OCI images with its own OCI runtime. This file only wires
// commands; every command's logic lives in the package named after its noun.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/berthproject/berth/runtime/cli"
	"github.com/spf13/cobra"
)

// root is the top-level command; files in this package add their
// subcommands to it from init functions, one file per noun.
var root = &cobra.Command{
	Use:           "berth",
	Short:         "berth: a daemonless container engine with its own OCI runtime",
	SilenceUsage:  true,
	SilenceErrors: true,
}

// storeRoot is where images, snapshots and containers live (--root, BERTH_ROOT).
var storeRoot string

func init() {
	def := os.Getenv("BERTH_ROOT")
	if def == "" {
		def = "/var/lib/berth"
	}
	root.PersistentFlags().StringVar(&storeRoot, "root", def, "storage root (env BERTH_ROOT)")
}

// exitError carries a process exit status through cobra without printing.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// Hidden re-exec entry points (the engine's monitor and init) run
	// before cobra so that they start as fast as the process can. (The
	// runtime's container init starts earlier still: runtime/initproc.)
	if len(os.Args) > 1 {
		if fn, ok := reexecs[os.Args[1]]; ok {
			os.Exit(fn(os.Args[2:]))
		}
	}
	// (Invoked as berth-runtime, e.g. as containerd's runc binary, berth
	// never gets here: runtime/cli speaks the runc-compatible CLI.)
	os.Exit(execute(root, os.Args[1:]))
}

// execute runs cmd with args and maps errors to exit codes: an exitError
// (or the runtime CLI's cli.ExitError) passes its code through, any other
// error is one line on stderr and 125 (docker's "the engine itself failed").
func execute(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	if e, ok := err.(exitError); ok {
		return e.code
	}
	var ce cli.ExitError
	if errors.As(err, &ce) {
		return ce.Code
	}
	fmt.Fprintf(os.Stderr, "berth: %v\n", err)
	return 125
}

// reexecs maps hidden first arguments to entry points run in a re-executed
// berth (the container init, the per-container monitor). Files register
// theirs from init functions.
var reexecs = map[string]func(args []string) int{}
