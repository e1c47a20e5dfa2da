package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SCMP_ACT_NOTIFY hands a syscall to a seccomp agent: the filter is
// installed with a listener fd, which the runtime passes to the agent
// listening on linux.seccomp.listenerPath. The container's init installs
// the filter (LoadListener) but cannot reach the host's socket from inside
// its root, so it passes the fd to the runtime, which sends it
// (SendListener), as runc does.

// UsesNotify reports whether s has an SCMP_ACT_NOTIFY rule (or default).
func UsesNotify(s *specs.LinuxSeccomp) bool {
	if s == nil {
		return false
	}
	if s.DefaultAction == specs.ActNotify {
		return true
	}
	return slices.ContainsFunc(s.Syscalls, func(sc specs.LinuxSyscall) bool { return sc.Action == specs.ActNotify })
}

// LoadListener is Load for profiles with SCMP_ACT_NOTIFY: it installs the
// filter with a notification listener and returns the listener's fd.
func LoadListener(s *specs.LinuxSeccomp) (*os.File, error) {
	if s == nil {
		return nil, errors.New("seccomp: no profile")
	}
	if s.ListenerPath == "" {
		return nil, errors.New("seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
	}
	fprog, p, err := build(s, true)
	if err != nil {
		return nil, err
	}
	// TSYNC and NEW_LISTENER both want the return value; TSYNC_ESRCH
	// makes a TSYNC failure an error instead, freeing it for the fd.
	flags := p.flags | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	if p.waitKillable {
		flags |= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	}
	fd, err := installFD(fprog, flags)
	runtime.KeepAlive(fprog)
	if err != nil {
		return nil, err
	}
	return os.NewFile(fd, "seccomp-notify"), nil
}

// SendListener gives the notify fd to the seccomp agent on listenerPath,
// with the container process state in JSON as the runtime spec says (the
// fd named "seccompFd" in Fds, listenerMetadata as Metadata).
func SendListener(listenerPath string, fd *os.File, st specs.ContainerProcessState) error {
	st.Fds = []string{specs.SeccompFdName}
	if st.Version == "" {
		st.Version = specs.Version
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return err
	}
	// x/sys/unix rather than package net: this runs in the container init,
	// which keeps its imports few to start early (see runtime/initproc).
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("seccomp agent at %s: %w", listenerPath, err)
	}
	defer unix.Close(sock)
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: listenerPath}); err != nil {
		return fmt.Errorf("seccomp agent at %s: %w", listenerPath, err)
	}
	n, err := unix.SendmsgN(sock, payload, unix.UnixRights(int(fd.Fd())), nil, 0)
	runtime.KeepAlive(fd)
	if err != nil {
		return fmt.Errorf("seccomp agent at %s: %w", listenerPath, err)
	}
	if n != len(payload) {
		return fmt.Errorf("seccomp agent at %s: short write", listenerPath)
	}
	return nil
}

func installFD(fprog *unix.SockFprog, flags uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(fprog)))
	switch {
	case errno == unix.EACCES:
		return 0, errors.New("seccomp: loading the filter needs no_new_privs or CAP_SYS_ADMIN")
	case errno == unix.ESRCH:
		return 0, errors.New("seccomp: a thread could not be synchronised to the filter")
	case errno != 0:
		return 0, fmt.Errorf("seccomp: install filter with listener: %w", errno)
	}
	return r, nil
}
