package initproc

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// RelayArg, after the preserved-fd count, runs the relay instead of the
// init: `berth runtime-init N relay FLAGS`.
//
// A container that joins a user (or time) namespace by path needs its
// other new namespaces made inside that user namespace, which must own
// them. A multi-threaded Go process cannot setns into a user or time
// namespace, so util-linux's nsenter (single-threaded C) enters them and
// runs the relay there; the relay forks the real init with the clone
// flags FLAGS (they now belong to the joined user namespace), tells the
// runtime the init's host pid, and waits to pass the init's exit status
// on, dying of the same signal when it was killed.
const RelayArg = "relay"

// MsgPid is the relay's only message: the container init's host pid.
const MsgPid = "pid"

func relay(preserve int, flags string) int {
	base := 3 + preserve
	cl, err := strconv.ParseUint(flags, 16, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth relay: bad clone flags %q\n", flags)
		return 1
	}
	sc := NewSync(os.NewFile(uintptr(base+FdSync), "sync"))
	fail := func(err error) int {
		_ = sc.Send(Msg{T: MsgError, Msg: err.Error()})
		return 1
	}
	// The init gets our fds as they are: stdio, the preserved ones and the
	// init's own (the sealed binary it runs from among them).
	files := make([]uintptr, base+FdCount)
	for i := range files {
		files[i] = uintptr(i)
	}
	sys := &syscall.SysProcAttr{Cloneflags: uintptr(cl) &^ unix.CLONE_NEWTIME, Pdeathsig: syscall.SIGKILL}
	if cl&unix.CLONE_NEWTIME != 0 {
		// shares bits with clone(2)'s exit signal: unshared instead
		sys.Unshareflags = unix.CLONE_NEWTIME
	}
	exe := "/proc/self/fd/" + strconv.Itoa(base+FdExe)
	pid, err := syscall.ForkExec(exe, []string{"berth", Arg, strconv.Itoa(preserve)},
		&syscall.ProcAttr{Env: os.Environ(), Files: files, Sys: sys})
	if err != nil {
		return fail(fmt.Errorf("starting container init in the joined namespaces: %w", err))
	}
	if err := sc.Send(Msg{T: MsgPid, Pid: pid}); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return 1
	}
	// Hold nothing of the init's: the container sees our fds through
	// /proc only as long as we keep them.
	for i := 3; i < len(files); i++ {
		unix.Close(i)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	if ws.Signaled() {
		// Go dies of a terminating signal nobody asked to handle, the way
		// the init did; for the others the shell's 128+N says the same.
		unix.Kill(os.Getpid(), ws.Signal())
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
