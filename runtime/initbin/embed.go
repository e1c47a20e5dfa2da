//go:build embedinit

package initbin

import _ "embed"

// Written by `make build` before berth is built.
var (
	//go:embed berth-init
	exe []byte
	//go:embed berth-init.sha256
	sum string
)
