package initproc

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ipcSysctls are the kernel.* sysctls that belong to an IPC namespace.
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// CheckSysctls refuses every linux.sysctl of s that is not confined to a
// namespace the container has apart from ours: the init writes them with
// the host's privileges, so kernel.core_pattern, vm.* and the like would
// change the whole host (runc refuses them too).
func CheckSysctls(s *specs.Spec) error {
	if s.Linux == nil {
		return nil
	}
	for k := range s.Linux.Sysctl {
		key := strings.ReplaceAll(k, "/", ".")
		var ns specs.LinuxNamespaceType
		switch {
		case ipcSysctls[key] || strings.HasPrefix(key, "fs.mqueue."):
			ns = specs.IPCNamespace
		case strings.HasPrefix(key, "net."):
			ns = specs.NetworkNamespace
		case key == "kernel.hostname" || key == "kernel.domainname":
			ns = specs.UTSNamespace
		default:
			return fmt.Errorf("sysctl %q is not namespaced: setting it would change the host", k)
		}
		if !ownNamespace(s, ns) {
			return fmt.Errorf("sysctl %q needs the container's own %s namespace", k, ns)
		}
	}
	return nil
}

var nsProcNames = map[specs.LinuxNamespaceType]string{
	specs.IPCNamespace: "ipc", specs.NetworkNamespace: "net", specs.UTSNamespace: "uts",
}

// ownNamespace reports whether s gives the container a namespace of type t
// that is not ours: a new one, or one joined by a path naming another.
func ownNamespace(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	for _, n := range s.Linux.Namespaces {
		if n.Type != t {
			continue
		}
		if n.Path == "" {
			return true
		}
		var theirs, mine unix.Stat_t
		if unix.Stat(n.Path, &theirs) != nil || unix.Stat("/proc/self/ns/"+nsProcNames[t], &mine) != nil {
			return false
		}
		return theirs.Dev != mine.Dev || theirs.Ino != mine.Ino
	}
	return false
}
