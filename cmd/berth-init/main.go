// Command berth-init is the container init on its own. `make build` embeds
// it in berth (runtime/initbin), which then starts it for every container
// and exec instead of re-executing all of itself: a binary a sixth of
// berth's size, with a tenth of its package inits, starts faster.
package main

import (
	"fmt"
	"os"

	_ "github.com/berthproject/berth/runtime/initproc" // takes over in its init function
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-init: the init berth starts in containers; it is not run by hand")
	os.Exit(2)
}
