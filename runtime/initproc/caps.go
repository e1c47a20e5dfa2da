package initproc

import (
	"fmt"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capNames lists capabilities by number, as in linux/capability.h.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

func CapNumber(name string) (int, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capNames {
		if c == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

// capMask turns names (validated earlier) into a 64-bit set.
func CapMask(names []string) uint64 {
	var m uint64
	for _, n := range names {
		if i, err := CapNumber(n); err == nil {
			m |= 1 << uint(i)
		}
	}
	return m
}

type capSets struct{ bounding, effective, inheritable, permitted, ambient uint64 }

func capsOf(c *specs.LinuxCapabilities) capSets {
	return capSets{CapMask(c.Bounding), CapMask(c.Effective), CapMask(c.Inheritable), CapMask(c.Permitted), CapMask(c.Ambient)}
}

// dropBounding removes from this thread's bounding set every capability
// not in keep. It needs CAP_SETPCAP, so it runs before the uid change.
func dropBounding(keep uint64, last int) error {
	for c := 0; c <= last; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop bounding capability %d: %w", c, err)
		}
	}
	return nil
}

// applyCaps sets the effective, permitted and inheritable sets of this
// thread (capset is per thread; the exec happens on it), then ambient.
func applyCaps(c capSets) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0] = unix.CapUserData{Effective: uint32(c.effective), Permitted: uint32(c.permitted), Inheritable: uint32(c.inheritable)}
	data[1] = unix.CapUserData{Effective: uint32(c.effective >> 32), Permitted: uint32(c.permitted >> 32), Inheritable: uint32(c.inheritable >> 32)}
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for i := 0; i < 64; i++ {
		if c.ambient&(1<<uint(i)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %s: %w", capNames[i], err)
		}
	}
	return nil
}

// CapabilityNames lists every capability berth knows, by number: the
// engine's --cap-add ALL and --privileged use the same list the runtime
// applies.
func CapabilityNames() []string { return append([]string(nil), capNames...) }
