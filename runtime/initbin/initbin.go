// Package initbin holds the container init as a binary of its own
// (cmd/berth-init), embedded in berth by `make build` (build tag
// embedinit). A build without it (plain go build, go test) embeds
// nothing, and the runtime re-executes its own binary as the init, so a
// stale init can never be embedded by accident.
package initbin

import "strings"

// Binary returns the embedded init and the hex sha256 of its bytes, or nil
// when this build embeds none.
func Binary() ([]byte, string) {
	if len(exe) == 0 {
		return nil, ""
	}
	return exe, strings.TrimSpace(sum)
}
