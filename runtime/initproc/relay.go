package initproc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// RelayArg, after the preserved-fd count, runs the relay instead of the
// init: `berth runtime-init N relay FLAGS [key=value...]` (RelayArgs).
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

// RelayArgs is what the relay needs to fork the init: the namespaces to
// make, the offsets of a new time namespace, and the id mappings of a new
// user namespace (when only the time namespace is joined).
type RelayArgs struct {
	Flags                    uintptr
	Offsets                  string // as timens_offsets wants them
	UIDMappings, GIDMappings []specs.LinuxIDMapping
}

// Encode returns the relay's arguments, RelayArg first.
func (a RelayArgs) Encode() []string {
	out := []string{RelayArg, strconv.FormatUint(uint64(a.Flags), 16)}
	if a.Offsets != "" {
		out = append(out, "timens="+a.Offsets)
	}
	maps := func(key string, ms []specs.LinuxIDMapping) {
		if len(ms) == 0 {
			return
		}
		var f []string
		for _, m := range ms {
			f = append(f, fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size))
		}
		out = append(out, key+"="+strings.Join(f, ","))
	}
	maps("uidmap", a.UIDMappings)
	maps("gidmap", a.GIDMappings)
	return out
}

func decodeRelayArgs(args []string) (RelayArgs, error) {
	var a RelayArgs
	if len(args) < 1 {
		return a, errors.New("no clone flags")
	}
	cl, err := strconv.ParseUint(args[0], 16, 64)
	if err != nil {
		return a, fmt.Errorf("bad clone flags %q", args[0])
	}
	a.Flags = uintptr(cl)
	for _, kv := range args[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "timens":
			a.Offsets = v
		case "uidmap", "gidmap":
			for _, f := range strings.Split(v, ",") {
				var m specs.LinuxIDMapping
				if _, err := fmt.Sscanf(f, "%d:%d:%d", &m.ContainerID, &m.HostID, &m.Size); err != nil {
					return a, fmt.Errorf("bad id mapping %q", f)
				}
				if k == "uidmap" {
					a.UIDMappings = append(a.UIDMappings, m)
				} else {
					a.GIDMappings = append(a.GIDMappings, m)
				}
			}
		default:
			return a, fmt.Errorf("unknown relay argument %q", kv)
		}
	}
	return a, nil
}

// SetTimeOffsets writes offsets into the time namespace the calling
// thread's children will have (made by unshare(CLONE_NEWTIME) on it). That
// is /proc/<tid>/timens_offsets: the file is per process, not per thread
// (no /proc/thread-self/timens_offsets), but /proc/<tid> names the thread.
// The kernel takes them only until a process enters the namespace.
func SetTimeOffsets(offsets string) error {
	p := "/proc/" + strconv.Itoa(unix.Gettid()) + "/timens_offsets"
	if err := os.WriteFile(p, []byte(offsets), 0); err != nil {
		return fmt.Errorf("time namespace offsets: %w", err)
	}
	return nil
}

func relay(preserve int, args []string) int {
	base := 3 + preserve
	ra, err := decodeRelayArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth relay: %v\n", err)
		return 1
	}
	cl := ra.Flags
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
	sys := &syscall.SysProcAttr{Cloneflags: cl &^ unix.CLONE_NEWTIME, Pdeathsig: syscall.SIGKILL}
	if cl&unix.CLONE_NEWTIME != 0 {
		// Not a clone flag (it shares bits with clone(2)'s exit signal):
		// unshared on this thread, which Main locked and forks from, so
		// the init enters it with its execve, offsets set.
		if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
			return fail(fmt.Errorf("new time namespace: %w", err))
		}
		if ra.Offsets != "" {
			if err := SetTimeOffsets(ra.Offsets); err != nil {
				return fail(err)
			}
		}
	}
	if cl&unix.CLONE_NEWUSER != 0 {
		for _, m := range ra.UIDMappings {
			sys.UidMappings = append(sys.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		for _, m := range ra.GIDMappings {
			sys.GidMappings = append(sys.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		sys.GidMappingsEnableSetgroups = true
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
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
