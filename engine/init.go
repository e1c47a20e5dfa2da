package engine

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// InitMain is --init's PID 1 (berth re-executed in the container as
// "container-init -- CMD..."): it runs CMD in its own process group,
// forwards signals to it, reaps every orphan, and exits with CMD's status.
func InitMain(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "berth-init: no command")
		return 127
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	prog, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: %v\n", err)
		return 127
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	// With a terminal, the child's group becomes the foreground one so
	// that ^C reaches it directly.
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		attr.Foreground = true
		attr.Ctty = 0
	}
	proc, err := os.StartProcess(prog, args, &os.ProcAttr{
		Env: os.Environ(), Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: attr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: %v\n", err)
		if os.IsPermission(err) {
			return 126
		}
		return 127
	}
	child := proc.Pid
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			switch sig {
			case unix.SIGCHLD, unix.SIGURG, unix.SIGTTIN, unix.SIGTTOU, unix.SIGWINCH:
				if sig == unix.SIGWINCH {
					unix.Kill(child, sig)
				}
				continue
			}
			unix.Kill(child, sig)
		}
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0
		}
		if pid == child {
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
}
