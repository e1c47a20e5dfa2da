package main

import "github.com/berthproject/berth/runtime/cli"

// `berth runtime`: the OCI runtime with runc's command line. As
// berth-runtime (a link), berth is that command line itself: runtime/cli
// takes over before main, and before this package builds its commands.
func init() {
	root.AddCommand(cli.Command("runtime"))
}
