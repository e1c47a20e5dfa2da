package initproc

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ConsoleMasterName is the payload sent with the pty master, as runc does
// (its SendFile sends the file's name, "/dev/ptmx" for a pty master), so
// receivers written for runc (containerd's shim, recvtty) accept ours.
const ConsoleMasterName = "/dev/ptmx"

// SetupConsole opens a new pty pair from /dev/ptmx, sends the master over
// sock, a unix socket connected to --console-socket (on the host, before
// entering the container's mount namespace: the path need not exist
// inside it), and returns the slave, to become the container process's
// stdio and controlling terminal. Call it where /dev/ptmx is the
// container's devpts, after its /dev is set up.
func SetupConsole(sock *os.File) (*os.File, error) {
	master, slave, err := OpenPty()
	if err != nil {
		return nil, err
	}
	defer master.Close() // the receiver holds its own copy once sent
	rights := unix.UnixRights(int(master.Fd()))
	err = unix.Sendmsg(int(sock.Fd()), []byte(ConsoleMasterName), rights, nil, 0)
	runtime.KeepAlive(master)
	if err != nil {
		slave.Close()
		return nil, fmt.Errorf("console socket: sending pty master: %w", err)
	}
	return slave, nil
}

// OpenPty opens a pty master on /dev/ptmx, unlocks it and opens its peer.
// TIOCGPTPEER opens the slave from the master itself, so it cannot pick
// a /dev/pts of another devpts instance; kernels before 4.13 fall back to
// the path.
func OpenPty() (master, slave *os.File, err error) {
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console: open /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(mfd), ConsoleMasterName)
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("console: unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("console: ptsname: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER,
		uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		fd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			master.Close()
			return nil, nil, fmt.Errorf("console: open %s: %w", name, err)
		}
		sfd = uintptr(fd)
	}
	return master, os.NewFile(sfd, name), nil
}
