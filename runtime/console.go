package runtime

import (
	"fmt"
	"net"
	"os"

	"github.com/berthproject/berth/runtime/initproc"
)

// consoleMasterName is the payload sent with the pty master (see
// initproc.SetupConsole).
const consoleMasterName = initproc.ConsoleMasterName

// setupConsole is initproc.SetupConsole on the unix socket at path socket
// (--console-socket).
func setupConsole(socket string) (*os.File, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket %s: %w", socket, err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		return nil, fmt.Errorf("console socket %s: %w", socket, err)
	}
	defer f.Close()
	return initproc.SetupConsole(f)
}
