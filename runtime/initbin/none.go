//go:build !embedinit

package initbin

var (
	exe []byte
	sum string
)
