// swapper is the hostile container of the cp race tests: it swaps
// directory DIR with a symlink to TARGET (atomically, renameat2
// RENAME_EXCHANGE) as fast as it can, so DIR is always one or the other.
// The other arguments are made in DIR first (NAME/ as a directory).
package main

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	dir, target := os.Args[1], os.Args[2]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(err)
	}
	for _, f := range os.Args[3:] { // NAME/ is a directory
		if strings.HasSuffix(f, "/") {
			os.Mkdir(dir+"/"+f, 0o755)
		} else {
			os.WriteFile(dir+"/"+f, nil, 0o644)
		}
	}
	if err := os.Symlink(target, dir+".lnk"); err != nil {
		panic(err)
	}
	for {
		unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, dir+".lnk", unix.RENAME_EXCHANGE)
	}
}
