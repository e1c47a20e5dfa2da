package runtime

import (
	"errors"
	"io"
	"os"
	"os/signal"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// ttyProxy is `run` with process.terminal and no --console-socket, as
// runc does it: berth receives the pty master itself and relays it to its
// own stdio, with its terminal (if any) in raw mode and its size passed on.
type ttyProxy struct {
	sock *os.File // our end of the socketpair the init sends the master on
	done chan struct{}
}

func newTTYProxy() (p *ttyProxy, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return &ttyProxy{sock: os.NewFile(uintptr(fds[0]), "console-proxy"), done: make(chan struct{})},
		os.NewFile(uintptr(fds[1]), "console-child"), nil
}

// serve receives the master (the init sends it during create) and copies
// until the container side closes. stop restores our terminal.
func (p *ttyProxy) serve() (stop func(), err error) {
	defer p.sock.Close()
	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(p.sock.Fd()), buf, oob, 0)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, errors.New("console: no pty master received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, errors.New("console: no pty master received")
	}
	master := os.NewFile(uintptr(fds[0]), "pty-master")
	var cur console.Console
	if c, err := console.ConsoleFromFile(os.Stdin); err == nil {
		cur = c
		if mc, err := console.ConsoleFromFile(master); err == nil {
			_ = mc.ResizeFrom(cur)
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, unix.SIGWINCH)
			go func() {
				for range winch {
					_ = mc.ResizeFrom(cur)
				}
			}()
			defer func() {
				go func() { <-p.done; signal.Stop(winch); close(winch) }()
			}()
		}
		_ = cur.SetRaw()
	}
	go func() { _, _ = io.Copy(master, os.Stdin) }()
	go func() {
		_, _ = io.Copy(os.Stdout, master)
		master.Close()
		close(p.done)
	}()
	return func() {
		if cur != nil {
			_ = cur.Reset()
		}
	}, nil
}
